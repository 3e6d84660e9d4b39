"""Promotion: mark the champion definition / annotator version that bulk annotation uses by default.

A version is a taxonomy version (``taxonomies/<v>.yaml``, or the workspace taxonomy's own) or a
refined zero-shot annotator (``models/zero-shot/versions/<v>``). The champion is the latest
promotion in the registry. Promoting a zero-shot version also installs it as the workspace's
zero-shot annotator, so every ``zero-shot`` consumer (evaluate, distill) uses it from then on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..annotators import zero_shot_dir
from ..taxonomy import Taxonomy, load_taxonomy
from ..workspace import Workspace
from .registry import Lineage, connect, record_run
from .versions import find_version, load_zero_shot

KINDS = ("taxonomy", "zero-shot")


@dataclass(frozen=True)
class Champion:
    version: str
    kind: str  # one of KINDS
    path: str
    promoted_at: float
    run_id: str | None = None


def promote(workspace: Workspace, version: str) -> Champion:
    """Make ``version`` (or a unique prefix) the champion; recorded as a 'promote' run."""
    kind, full, path = find_version(workspace, version)
    if kind == "zero-shot":
        annotator = load_zero_shot(workspace, full)
        annotator.save(zero_shot_dir(workspace))
        lineage = Lineage(taxonomy_version=annotator.taxonomy_version_, prompt_version=full, model=annotator.encoder.name,
                          golden_version=annotator.golden_version_, golden_split="dev")
    else:
        lineage = Lineage(taxonomy_version=full)
    run = record_run(workspace, "promote", lineage=lineage, config={"version": full, "kind": kind, "path": str(path)})
    champion = Champion(full, kind, str(path), time.time(), run.run_id)
    with connect(workspace) as db:
        db.execute("INSERT INTO champion VALUES (?, ?, ?, ?, ?)",
                   (champion.promoted_at, champion.version, champion.kind, champion.path, champion.run_id))
    return champion


def champion(workspace: Workspace, kind: str | None = None) -> Champion | None:
    """The latest promotion (of ``kind`` if given), or None when nothing was promoted."""
    query, params = "SELECT * FROM champion", ()
    if kind:
        query, params = query + " WHERE kind = ?", (kind,)
    with connect(workspace) as db:
        row = db.execute(query + " ORDER BY promoted_at DESC, rowid DESC LIMIT 1", params).fetchone()
    if row is None:
        return None
    return Champion(row["version"], row["kind"], row["path"], row["promoted_at"], row["run_id"])


def champion_taxonomy(workspace: Workspace) -> Taxonomy:
    """The taxonomy bulk annotation should use: the promoted taxonomy version, else the workspace's."""
    current = champion(workspace, "taxonomy")
    return load_taxonomy(current.path) if current else workspace.taxonomy
