"""Reading tabular inputs (CSV, JSONL, Parquet) with column mappings and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from .errors import DataError


def read_table(path: str | Path, **csv_options: object) -> pd.DataFrame:
    """Read a CSV, JSONL or Parquet file by its suffix; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in {".jsonl", ".ndjson"}:
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_csv(path, keep_default_na=False, na_values=[""], **csv_options)
    except (ValueError, pd.errors.ParserError, OSError) as err:
        raise DataError(f"{path}: cannot parse: {err}") from err


def require_columns(frame: pd.DataFrame, mapping: Mapping[str, str | None], source: str | Path) -> None:
    """Raise naming every mapped column that ``frame`` lacks (mapping: role -> column)."""
    missing = [f"{column!r} (for {role})" for role, column in mapping.items() if column and column not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; found: {', '.join(map(str, frame.columns))}"
        )
