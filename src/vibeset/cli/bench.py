"""The ``vibeset bench`` group: each stage registers its benchmark verb on ``bench_app``."""

from __future__ import annotations

import typer

from .app import app

bench_app = typer.Typer(help="Benchmarks, each against a baseline measured in the same run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
