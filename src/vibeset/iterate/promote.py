"""Promotion: mark the champion definition / annotator version that bulk annotation uses by default.

A version is a taxonomy version (or the workspace taxonomy's own) or a refined zero-shot annotator.
The champion is the latest promotion in the run registry: ``runs.taxonomy_in_use`` gives every
stage the promoted taxonomy, and the teacher stage uses a promoted zero-shot version, so the next
``vibeset run`` annotates with what was promoted.
"""

from __future__ import annotations

import time

from ..annotate.versions import find_version, load_zero_shot_version
from ..runs import Champion, Lineage, record_champion, record_run
from ..taxonomy import load_taxonomy
from ..workspace import Workspace


def promote(workspace: Workspace, version: str) -> Champion:
    """Make ``version`` (or a unique prefix) the champion; recorded as a 'promote' run."""
    kind, full, path = find_version(workspace, version)
    if kind == "zero-shot":
        annotator = load_zero_shot_version(workspace, full)
        lineage = Lineage(taxonomy_version=annotator.taxonomy_version_, prompt_version=full, model=annotator.encoder.name,
                          golden_version=annotator.golden_version_, golden_split="dev")
    else:
        load_taxonomy(path)  # a corrupt version is refused before it becomes the champion
        lineage = Lineage(taxonomy_version=full)
    run = record_run(workspace, "promote", lineage=lineage, config={"version": full, "kind": kind, "path": str(path)})
    champion = Champion(full, kind, str(path), time.time(), run.run_id)
    record_champion(workspace, champion)
    return champion
