"""The run registry: every annotate / evaluate / iterate / distill run, recorded in SQLite.

One file per workspace (``ARTIFACTS/runs.sqlite``). A run row holds its config, its lineage
(taxonomy, prompt, model, golden version and split), its metrics, cost and time, so any number
in a report can be traced to what produced it, and two runs can be diffed. Other stages call
``record_run``; nothing else here is needed to write to the registry.
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..workspace import Workspace

REGISTRY_FILE = "runs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    taxonomy_version TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    model TEXT NOT NULL,
    golden_version TEXT NOT NULL,
    golden_split TEXT NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    cost_usd REAL,
    duration_s REAL,
    artifacts TEXT NOT NULL,
    parent_id TEXT,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_created ON run (created_at);
CREATE TABLE IF NOT EXISTS test_access (
    at REAL NOT NULL,
    golden_version TEXT NOT NULL,
    purpose TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS champion (
    promoted_at REAL NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    run_id TEXT
);
"""


@dataclass(frozen=True)
class Lineage:
    """What produced a run's outputs; empty strings where a field does not apply."""

    taxonomy_version: str = ""
    prompt_version: str = ""
    model: str = ""
    golden_version: str = ""
    golden_split: str = ""


@dataclass(frozen=True)
class Run:
    """One recorded run. ``created_at`` is a Unix time; ``cost_usd`` None means unknown."""

    run_id: str
    kind: str
    created_at: float
    status: str
    lineage: Lineage
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = 0.0
    duration_s: float | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    parent_id: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created_at))
        return out

    def headline(self) -> dict[str, float]:
        """Macro and micro F1 when the metrics carry an evaluation, else nothing."""
        out = {}
        for block in ("macro", "micro"):
            value = self.metrics.get(block, {})
            if isinstance(value, dict) and "f1" in value:
                out[f"{block}_f1"] = value["f1"]
            elif isinstance(self.metrics.get(f"{block}_f1"), (int, float)):
                out[f"{block}_f1"] = self.metrics[f"{block}_f1"]
        return out


def jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _dumps(value: Any) -> str:
    return json.dumps(jsonable(value or {}), sort_keys=True, allow_nan=False)


def connect(workspace: Workspace) -> sqlite3.Connection:
    """The workspace's registry database, created on first use."""
    path = workspace.artifact(REGISTRY_FILE)
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA)
    return db


def record_run(
    workspace: Workspace,
    kind: str,
    *,
    lineage: Lineage | None = None,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    cost_usd: float | None = 0.0,
    duration_s: float | None = None,
    artifacts: Mapping[str, str | Path] | None = None,
    parent_id: str | None = None,
    status: str = "ok",
    note: str = "",
    run_id: str | None = None,
) -> Run:
    """Record one finished run and return it. ``run_id`` defaults to a fresh 8-hex id.

    ``config`` is what the user chose (never secrets); ``metrics`` any JSON, by convention an
    evaluation's ``micro`` / ``macro`` / ``per_attribute`` blocks; ``artifacts`` name -> path.
    """
    if not kind or not kind.replace("-", "").isalnum():
        raise ConfigError(f"run kind must be a word such as 'evaluate' or 'annotate', got {kind!r}")
    run = Run(
        run_id=run_id or secrets.token_hex(4),
        kind=kind,
        created_at=time.time(),
        status=status,
        lineage=lineage or Lineage(),
        config=jsonable(dict(config or {})),
        metrics=jsonable(dict(metrics or {})),
        cost_usd=cost_usd,
        duration_s=duration_s,
        artifacts={k: str(v) for k, v in (artifacts or {}).items()},
        parent_id=parent_id,
        note=note,
    )
    with connect(workspace) as db:
        db.execute(
            "INSERT INTO run VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run.run_id, run.kind, run.created_at, run.status,
                *(getattr(run.lineage, f) for f in Lineage.__dataclass_fields__),
                _dumps(run.config), _dumps(run.metrics), run.cost_usd, run.duration_s,
                _dumps(run.artifacts), run.parent_id, run.note,
            ),
        )
    return run


def _run(row: sqlite3.Row) -> Run:
    return Run(
        run_id=row["run_id"],
        kind=row["kind"],
        created_at=row["created_at"],
        status=row["status"],
        lineage=Lineage(**{f: row[f] for f in Lineage.__dataclass_fields__}),
        config=json.loads(row["config"]),
        metrics=json.loads(row["metrics"]),
        cost_usd=row["cost_usd"],
        duration_s=row["duration_s"],
        artifacts=json.loads(row["artifacts"]),
        parent_id=row["parent_id"],
        note=row["note"],
    )


def list_runs(workspace: Workspace, *, kind: str | None = None, limit: int | None = 50) -> list[Run]:
    """Most recent first; ``kind`` filters; ``limit`` None lists all."""
    query = "SELECT * FROM run" + (" WHERE kind = ?" if kind else "") + " ORDER BY created_at DESC, rowid DESC"
    params: list[Any] = [kind] if kind else []
    if limit is not None:
        query += " LIMIT ?"
        params.append(limit)
    with connect(workspace) as db:
        return [_run(row) for row in db.execute(query, params)]


def get_run(workspace: Workspace, run_id: str) -> Run:
    """A run by id or unique id prefix (like git)."""
    with connect(workspace) as db:
        rows = db.execute(
            "SELECT * FROM run WHERE run_id = ? OR run_id LIKE ? ORDER BY run_id = ? DESC LIMIT 3",
            (run_id, run_id.replace("%", "").replace("_", "") + "%", run_id),
        ).fetchall()
    if not rows:
        raise ConfigError(f"no run {run_id!r} in the registry; 'vibeset runs list' shows the recorded ones")
    if rows[0]["run_id"] != run_id and len(rows) > 1:
        raise ConfigError(f"run id prefix {run_id!r} is ambiguous: {', '.join(r['run_id'] for r in rows)}, ...")
    return _run(rows[0])


def _delta(a: Any, b: Any) -> float | None:
    return b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None


def compare_runs(workspace: Workspace, a: str, b: str) -> dict[str, Any]:
    """What differs between runs ``a`` and ``b``: config, lineage, and metric deltas (b - a).

    Metric deltas are unpaired differences of recorded numbers; for a paired test on the same
    items use ``vibeset iterate compare``.
    """
    run_a, run_b = get_run(workspace, a), get_run(workspace, b)
    keys = sorted(set(run_a.config) | set(run_b.config))
    config = {k: [run_a.config.get(k), run_b.config.get(k)] for k in keys if run_a.config.get(k) != run_b.config.get(k)}
    lineage = {
        f: [getattr(run_a.lineage, f), getattr(run_b.lineage, f)]
        for f in Lineage.__dataclass_fields__
        if getattr(run_a.lineage, f) != getattr(run_b.lineage, f)
    }
    metrics: dict[str, Any] = {}
    for block in ("macro", "micro"):
        ma, mb = run_a.metrics.get(block), run_b.metrics.get(block)
        if isinstance(ma, dict) and isinstance(mb, dict):
            metrics[block] = {k: {"a": ma[k], "b": mb[k], "delta": _delta(ma[k], mb[k])}
                              for k in ("precision", "recall", "f1", "mcc") if k in ma and k in mb}
    pa, pb = run_a.metrics.get("per_attribute", {}), run_b.metrics.get("per_attribute", {})
    if pa and pb:
        metrics["per_attribute_f1"] = {
            name: {"a": pa[name]["f1"], "b": pb[name]["f1"], "delta": _delta(pa[name]["f1"], pb[name]["f1"])}
            for name in sorted(set(pa) & set(pb))
        }
    return {"a": run_a.to_dict(), "b": run_b.to_dict(), "config": config, "lineage": lineage, "metrics": metrics}
