"""The shared Typer app and the one grammar every verb follows.

- ``--workspace/-w`` on every verb (default ``$VIBESET_WORKSPACE`` or the current directory), and
  every path a verb needs defaults to the workspace's;
- ``--json`` on every verb: exactly one JSON object on stdout, errors included (``{"error": ...}``);
  while a verb runs under ``--json`` file descriptor 1 points at stderr, so nothing a library, Ray
  or a child process prints can reach stdout before or after the object;
- one split vocabulary (``dev``, ``test``, ``all``, ``catalog``), one long name per option
  (``--bootstrap``, ``--top-k``), unique prefixes for versions;
- messages are printed as text, never as Rich markup (user text may hold brackets);
- a user error is one line and exit 2; anything else is one line and exit 1 (``VIBESET_DEBUG=1``
  shows the traceback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence, TextIO

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
    rich_markup_mode=None,
)
#: Progress and messages go to stderr; neither console interprets markup in what it prints.
console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
#: Tables and human-readable results go to stdout, wide enough for metric tables in logs.
stdout = Console(width=160, markup=False, highlight=False, soft_wrap=True)

WorkspaceOption = typer.Option(None, "--workspace", "-w", help="vibeset.toml or its directory (default: $VIBESET_WORKSPACE or .)")
JsonOption = typer.Option(False, "--json", help="Print one JSON object on stdout for machines (errors too).")

#: The one split vocabulary: golden dev / test videos, both, or the whole catalog.
SPLITS = ("dev", "test", "all", "catalog")
_SPLIT_ALIASES = {"golden-dev": "dev", "golden-test": "test", "golden-all": "all"}


def bootstrap_option(default: int) -> Any:
    return typer.Option(default, "--bootstrap", min=0, help="Bootstrap replicates for the 95% CIs.")


def top_k_option(default: int, help: str) -> Any:
    return typer.Option(default, "--top-k", "-k", min=1, help=help)


def split_option(default: Optional[str], allowed: Sequence[str], help: str) -> Any:
    return typer.Option(default, "--split", help=f"{help} One of {', '.join(allowed)}.")


class CliError(VibesetError):
    """A verb's own usage error (a bad combination of options): one line, exit ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop the verb with a one-line error (JSON under --json) and exit ``code``."""
    raise CliError(message, code)


def check_split(value: Optional[str], allowed: Sequence[str]) -> Optional[str]:
    """``value`` in the one split vocabulary (``golden-dev`` and ``golden-test`` are read as dev and test)."""
    if value is None:
        return None
    split = _SPLIT_ALIASES.get(value.strip().lower(), value.strip().lower())
    if split not in allowed:
        fail(f"--split must be one of {', '.join(allowed)}, not {value!r}")
    return split


def resolve_prefix(value: str, candidates: Sequence[str], what: str) -> str:
    """The one candidate ``value`` names exactly or is a unique prefix of."""
    if value in candidates:
        return value
    hits = [c for c in candidates if c.startswith(value)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        shown = ", ".join(candidates[-5:]) or "none yet"
        fail(f"no {what} {value!r}; the {what}s are: {shown}")
    fail(f"{what} {value!r} is ambiguous: {', '.join(hits[:5])}")


def workspace(path: Optional[Path]) -> Workspace:
    return load_workspace(path)


_json_out: TextIO | None = None


def print_json(value: Any) -> None:
    """One JSON object on the real stdout (under ``main`` it is the only thing written there)."""
    out = _json_out or sys.stdout
    out.write(json.dumps(value, indent=2, default=_jsonable) + "\n")
    out.flush()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def error_line(message: object) -> None:
    """'error: MESSAGE' on stderr; the message is printed as is (no markup: it may quote user text)."""
    console.print(Text("error: ", style="bold red") + Text(str(message)), soft_wrap=True)


def _report(message: str, code: int, as_json: bool) -> int:
    error_line(message)
    if as_json:
        print_json({"error": message, "exit_code": code})
    return code


def _stdout_to_stderr() -> None:
    """Keep the real stdout for ``print_json`` and point fd 1 (and children's) at stderr."""
    global _json_out
    sys.stdout.flush()
    _json_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)


def _run(args: list[str], as_json: bool) -> int:
    try:
        result = app(args=args, prog_name="vibeset", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.TyperException as err:  # Typer's (vendored click's) usage errors
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError":
            typer.echo(ctx.get_help() if ctx else str(err), err=True)
            return _report("a command is required", 2, as_json) if as_json else 2
        if not as_json and ctx is not None:
            typer.echo(ctx.get_usage(), err=True)
        return _report(err.format_message(), err.exit_code or 2, as_json)
    except typer.Abort:
        return _report("interrupted", 130, as_json)
    except CliError as err:
        return _report(str(err), err.code, as_json)
    except VibesetError as err:
        return _report(str(err), 2, as_json)
    except Exception as err:  # noqa: BLE001 - a bug: one line (and the traceback with VIBESET_DEBUG=1)
        if os.environ.get("VIBESET_DEBUG"):
            raise
        first = (str(err).strip().splitlines() or [""])[0][:300]
        return _report(f"internal error ({type(err).__name__}: {first}); re-run with VIBESET_DEBUG=1 for the traceback "
                       "and please report it", 1, as_json)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point: parse, run the verb, turn every failure into one line (a JSON object under --json)."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    if as_json:
        _stdout_to_stderr()
    sys.exit(_run(args, as_json))
