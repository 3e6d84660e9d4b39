"""The shared Typer app, console and small helpers every CLI module uses."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.text import Text

from ..errors import VibesetError
from ..workspace import Workspace, load_workspace

app = typer.Typer(
    name="vibeset",
    help="Turn nuanced video attributes ('vibes') into labels a recommender can use.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
#: Tables and human-readable results go to stdout, wide enough for metric tables in logs.
stdout = Console(width=160)

WorkspaceOption = typer.Option(None, "--workspace", "-w", help="vibeset.toml or its directory (default: $VIBESET_WORKSPACE or .)")
JsonOption = typer.Option(False, "--json", help="Print one JSON object on stdout for machines.")


def error_line(message: object) -> None:
    """'error: MESSAGE' on stderr; the message is printed as is (no markup: it may quote user text)."""
    console.print(Text("error: ", style="bold red") + Text(str(message)), highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    error_line(message)
    raise typer.Exit(code)


def workspace(path: Optional[Path]) -> Workspace:
    return load_workspace(path)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def main() -> None:
    """Entry point: VibesetErrors become one-line messages, not tracebacks."""
    try:
        app()
    except VibesetError as err:
        error_line(err)
        sys.exit(2)
