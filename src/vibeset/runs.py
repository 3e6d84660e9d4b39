"""Runs: every stage execution, recorded in the workspace's registry, and the honesty guard over golden test.

One SQLite file per workspace (``ARTIFACTS/runs.sqlite``). A run holds its kind, config, the
content ids of its input artifacts and the artifacts it wrote, its lineage (taxonomy, prompt,
model, golden version and split), metrics, cost, time and the process that ran it, so any number
in a report can be traced to what produced it and two runs can be diffed. Stages run inside
``recorded``: a run is written as ``running`` when it starts and finished as ``ok``, ``failed`` or
``interrupted``; one whose process was killed shows as ``killed``.

The golden **test** split is handed out only through ``golden_split(..., final=True)``, and every
hand-out is written here before any label is scored. The champion (what ``iterate promote``
chose) is recorded here too, so bulk annotation reads it from one place.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from .artifacts import Artifact, _alive, artifacts_of
from .errors import ArtifactError, ConfigError
from .golden import GoldenSet, workspace_golden
from .taxonomy import Taxonomy, load_taxonomy
from .workspace import Workspace

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
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
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    metrics TEXT NOT NULL,
    cost_usd REAL,
    duration_s REAL,
    parent_id TEXT,
    note TEXT NOT NULL,
    command TEXT NOT NULL,
    pid INTEGER,
    host TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS test_access (at REAL NOT NULL, golden_version TEXT NOT NULL, purpose TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS champion (
    promoted_at REAL NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL, run_id TEXT
);
"""
_LINEAGE = ("taxonomy_version", "prompt_version", "model", "golden_version", "golden_split")
_JSON = ("config", "inputs", "outputs", "metrics")


@dataclass(frozen=True)
class Lineage:
    """What produced a run's outputs; empty strings where a field does not apply."""

    taxonomy_version: str = ""
    prompt_version: str = ""
    model: str = ""
    golden_version: str = ""
    golden_split: str = ""


@dataclass
class Run:
    """One recorded run. ``created_at`` is a Unix time; ``cost_usd`` None means unknown."""

    run_id: str
    kind: str
    created_at: float
    status: str
    lineage: Lineage = field(default_factory=Lineage)
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = 0.0
    duration_s: float | None = None
    parent_id: str | None = None
    note: str = ""
    command: str = ""
    pid: int | None = None
    host: str = ""

    def use(self, name: str, artifact: Artifact) -> Artifact:
        """Record ``artifact`` as an input of this run (by content id) and return it."""
        self.inputs[name] = artifact.complete_manifest().content_id
        return artifact

    def wrote(self, name: str, artifact: Artifact) -> None:
        self.outputs[name] = str(artifact.path)

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


@contextlib.contextmanager
def connect(workspace: Workspace) -> Iterator[sqlite3.Connection]:
    """The registry, created on first use; a corrupt file is one error naming it."""
    path = artifacts_of(workspace).place("runs")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=30)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            with db:
                yield db
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        raise ArtifactError(
            f"{path}: the run registry is unreadable ({err}); move it aside to start a new one (its runs are lost)"
        ) from err


def new_run_id() -> str:
    return secrets.token_hex(4)


def _insert(db: sqlite3.Connection, run: Run) -> None:
    db.execute(
        "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            run.run_id, run.kind, run.created_at, run.status,
            *(getattr(run.lineage, f) for f in _LINEAGE),
            *(_dumps(getattr(run, f)) for f in _JSON),
            run.cost_usd, run.duration_s, run.parent_id, run.note, run.command, run.pid, run.host,
        ),
    )


def _check_kind(kind: str) -> None:
    if not kind or not kind.replace("-", "").isalnum():
        raise ConfigError(f"run kind must be a word such as 'evaluate' or 'annotate', got {kind!r}")


def record_run(
    workspace: Workspace,
    kind: str,
    *,
    lineage: Lineage | None = None,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    cost_usd: float | None = 0.0,
    duration_s: float | None = None,
    outputs: Mapping[str, str | Path] | None = None,
    parent_id: str | None = None,
    status: str = "ok",
    note: str = "",
    run_id: str | None = None,
) -> Run:
    """Record one finished run and return it (for work that is not a stage, e.g. a promotion)."""
    _check_kind(kind)
    run = Run(
        run_id=run_id or new_run_id(), kind=kind, created_at=time.time(), status=status,
        lineage=lineage or Lineage(), config=jsonable(dict(config or {})), metrics=jsonable(dict(metrics or {})),
        outputs={k: str(v) for k, v in (outputs or {}).items()}, cost_usd=cost_usd, duration_s=duration_s,
        parent_id=parent_id, note=note, command=" ".join(sys.argv)[:500], pid=os.getpid(), host=socket.gethostname(),
    )
    with connect(workspace) as db:
        _insert(db, run)
    return run


@contextlib.contextmanager
def recorded(
    workspace: Workspace, kind: str, config: Mapping[str, Any] | None = None, *, parent_id: str | None = None,
    run_id: str | None = None,
) -> Iterator[Run]:
    """Run a stage inside a recorded run: ``running`` now, finished with its status when the block ends.

    The block fills ``run.inputs`` / ``run.outputs`` (``Run.use`` / ``Run.wrote``), ``metrics``,
    ``lineage``, ``cost_usd`` and ``note``.
    """
    run = record_run(workspace, kind, config=config, parent_id=parent_id, status="running", run_id=run_id)
    started = time.perf_counter()
    try:
        yield run
        run.status = "ok"
    except (KeyboardInterrupt, SystemExit) as err:
        run.status = "interrupted" if isinstance(err, KeyboardInterrupt) or err.code else "ok"
        raise
    except BaseException as err:
        run.status = "failed"
        run.note = run.note or (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise
    finally:
        run.duration_s = time.perf_counter() - started
        run.config, run.metrics = jsonable(run.config), jsonable(run.metrics)
        with connect(workspace) as db:
            _insert(db, run)


def _run(row: sqlite3.Row) -> Run:
    status = row["status"]
    if status == "running" and row["host"] == socket.gethostname() and row["pid"] and not _alive(row["pid"]):
        status = "killed"
    return Run(
        run_id=row["run_id"], kind=row["kind"], created_at=row["created_at"], status=status,
        lineage=Lineage(**{f: row[f] for f in _LINEAGE}), **{f: json.loads(row[f]) for f in _JSON},
        cost_usd=row["cost_usd"], duration_s=row["duration_s"], parent_id=row["parent_id"], note=row["note"],
        command=row["command"], pid=row["pid"], host=row["host"],
    )


def list_runs(workspace: Workspace, *, kind: str | None = None, limit: int | None = 50) -> list[Run]:
    """Most recent first; ``kind`` filters; ``limit`` None lists all."""
    query = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY created_at DESC, rowid DESC"
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
            "SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? ORDER BY run_id = ? DESC LIMIT 3",
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
    """What differs between runs ``a`` and ``b``: config, lineage, inputs and metric deltas (b - a).

    Metric deltas are unpaired differences of recorded numbers; for a paired test on the same
    items use ``vibeset iterate compare``.
    """
    run_a, run_b = get_run(workspace, a), get_run(workspace, b)

    def changed(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, list[Any]]:
        return {k: [left.get(k), right.get(k)] for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)}

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
    return {
        "a": run_a.to_dict(), "b": run_b.to_dict(),
        "config": changed(run_a.config, run_b.config),
        "lineage": changed(asdict(run_a.lineage), asdict(run_b.lineage)),
        "inputs": changed(run_a.inputs, run_b.inputs),
        "metrics": metrics,
    }


# -- the honesty guard -----------------------------------------------------------------------------
SPLITS = ("dev", "test")


def golden_split(workspace: Workspace, split: str = "dev", *, final: bool = False, purpose: str = "") -> GoldenSet:
    """The workspace's golden ``split``; 'test' only with ``final=True``, and that use is recorded."""
    if split not in SPLITS:
        raise ConfigError(f"golden split must be 'dev' or 'test', got {split!r}")
    golden = workspace_golden(workspace)
    if split == "test":
        if not final:
            used = uses_of_test_split(workspace)
            raise ConfigError(
                "the golden test split is held out for final evaluations: iterate on 'dev' and pass --final "
                f"for a recorded test evaluation (the test split has been used {used} time(s) so far)"
            )
        record_test_use(workspace, golden.version, purpose)
    return golden.split(split)


def record_test_use(workspace: Workspace, golden_version: str, purpose: str) -> None:
    """Write down one look at the test split of golden ``golden_version`` (before any label is scored)."""
    with connect(workspace) as db:
        db.execute("INSERT INTO test_access VALUES (?, ?, ?)", (time.time(), golden_version, purpose))


def uses_of_test_split(workspace: Workspace, golden_version: str | None = None) -> int:
    """How many times the golden test split was handed out: of any golden version by default (a review or
    a new judgement changes the version, not which videos are held out, so it does not reset the count),
    or of ``golden_version`` only."""
    with connect(workspace) as db:
        if golden_version is None:
            return int(db.execute("SELECT COUNT(*) FROM test_access").fetchone()[0])
        return int(db.execute("SELECT COUNT(*) FROM test_access WHERE golden_version = ?", (golden_version,)).fetchone()[0])


# -- the champion ---------------------------------------------------------------------------------
CHAMPION_KINDS = ("taxonomy", "zero-shot")


@dataclass(frozen=True)
class Champion:
    version: str
    kind: str  # one of CHAMPION_KINDS
    path: str
    promoted_at: float
    run_id: str | None = None


def record_champion(workspace: Workspace, champion: Champion) -> None:
    with connect(workspace) as db:
        db.execute("INSERT INTO champion VALUES (?, ?, ?, ?, ?)",
                   (champion.promoted_at, champion.version, champion.kind, champion.path, champion.run_id))


def champion(workspace: Workspace, kind: str | None = None) -> Champion | None:
    """The latest promotion (of ``kind`` if given), or None when nothing was promoted."""
    query, params = "SELECT * FROM champion", ()
    if kind:
        query, params = query + " WHERE kind = ?", (kind,)
    if not artifacts_of(workspace).place("runs").exists():
        return None  # reading must not create the registry
    with connect(workspace) as db:
        row = db.execute(query + " ORDER BY promoted_at DESC, rowid DESC LIMIT 1", params).fetchone()
    if row is None:
        return None
    return Champion(row["version"], row["kind"], row["path"], row["promoted_at"], row["run_id"])


def taxonomy_in_use(workspace: Workspace) -> Taxonomy:
    """The taxonomy bulk annotation uses: the promoted taxonomy version, else the workspace's own."""
    current = champion(workspace, "taxonomy")
    return load_taxonomy(current.path) if current else workspace.taxonomy
