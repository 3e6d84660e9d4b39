"""The honesty guard: the golden TEST split is read only by an explicit, recorded final evaluation.

Iterating against the dev split is the point of the loop; every look at the test split spends
some of its independence. So the test split is handed out only with ``final=True`` (the CLI's
``--final``), each hand-out is written to the registry before any label is scored, and reports
print how many times the test split of that golden version has been used.
"""

from __future__ import annotations

import time

from ..errors import ConfigError
from ..golden import GoldenSet, workspace_golden
from ..workspace import Workspace
from .registry import connect

SPLITS = ("dev", "test")


def golden_split(workspace: Workspace, split: str = "dev", *, final: bool = False, purpose: str = "") -> GoldenSet:
    """The workspace's golden ``split``; 'test' only with ``final=True``, and that use is recorded."""
    if split not in SPLITS:
        raise ConfigError(f"golden split must be 'dev' or 'test', got {split!r}")
    golden = workspace_golden(workspace)
    if split == "test":
        if not final:
            used = uses_of_test_split(workspace, golden.version)
            raise ConfigError(
                "the golden test split is held out for final evaluations: iterate on 'dev' and pass --final "
                f"for a recorded test evaluation (test split of golden {golden.version} used {used} time(s) so far)"
            )
        record_test_use(workspace, golden.version, purpose)
    return golden.split(split)


def record_test_use(workspace: Workspace, golden_version: str, purpose: str) -> None:
    """Write down one look at the test split of golden ``golden_version`` (before any label is scored)."""
    with connect(workspace) as db:
        db.execute("INSERT INTO test_access VALUES (?, ?, ?)", (time.time(), golden_version, purpose))


def uses_of_test_split(workspace: Workspace, golden_version: str | None = None) -> int:
    """How many times the test split of a golden set was handed out.

    ``golden_version`` is the version of the whole golden set (both splits); by default the
    workspace's current one.
    """
    version = golden_version or workspace_golden(workspace).version
    with connect(workspace) as db:
        return int(db.execute("SELECT COUNT(*) FROM test_access WHERE golden_version = ?", (version,)).fetchone()[0])
