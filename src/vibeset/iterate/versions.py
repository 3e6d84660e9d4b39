"""Versions under iteration: taxonomy (definition) versions and refined zero-shot annotators.

A taxonomy version is a YAML file ``ARTIFACTS/taxonomies/<version>.yaml`` (the user's own file is
never overwritten); a zero-shot version is a saved annotator under
``ARTIFACTS/models/zero-shot/versions/<version>/``. Both are named by content hash, so a version
string in a report or the registry always means the same thing.

Annotator specs accepted by the iterate verbs: ``zero-shot`` (the workspace's), ``zero-shot@V``
(a refined version), ``champion`` (the promoted one), and what ``vibeset evaluate`` accepts
(``annotations:DIR``, ``student``). ``zero-shot@V`` with a taxonomy version V fits the
zero-shot thresholds on the golden dev split for V's definitions: an edited definition measured
offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..annotate.zeroshot import ZeroShotAnnotator
from ..annotators import load_or_fit_zero_shot, resolve
from ..catalog import Video
from ..encoder import workspace_encoder
from ..errors import ConfigError
from ..golden import GoldenSet
from ..taxonomy import Taxonomy, load_taxonomy
from ..workspace import Workspace
from ..files import atomic_write_text


def taxonomy_dir(workspace: Workspace) -> Path:
    return workspace.artifacts / "taxonomies"


def zero_shot_versions_dir(workspace: Workspace) -> Path:
    return workspace.artifacts / "models" / "zero-shot" / "versions"


def _unique_match(directory: Path, prefix: str, suffix: str, what: str) -> Path:
    matches = sorted(directory.glob(f"{prefix}*{suffix}")) if prefix and "/" not in prefix else []
    exact = [m for m in matches if m.name == prefix + suffix]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(f"no {what} {prefix!r} under {directory}")
    raise ConfigError(f"{what} prefix {prefix!r} is ambiguous: {', '.join(m.name for m in matches)}")


def save_taxonomy(workspace: Workspace, taxonomy: Taxonomy) -> Path:
    """Write ``taxonomy`` as a new version file (idempotent: the name is its content hash)."""
    path = taxonomy_dir(workspace) / f"{taxonomy.version}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, taxonomy.to_yaml())
    return path


def load_taxonomy_version(workspace: Workspace, spec: str | Path) -> Taxonomy:
    """A taxonomy by YAML path or by (a unique prefix of) a version under ``taxonomies/``."""
    if Path(spec).suffix in (".yaml", ".yml"):
        return load_taxonomy(spec)
    if spec == workspace.taxonomy.version:
        return workspace.taxonomy
    return load_taxonomy(_unique_match(taxonomy_dir(workspace), str(spec), ".yaml", "taxonomy version"))


def save_zero_shot(workspace: Workspace, annotator: ZeroShotAnnotator) -> str:
    """Save a fitted zero-shot annotator as a version; returns the version."""
    annotator.save(zero_shot_versions_dir(workspace) / annotator.version)
    return annotator.version


def load_zero_shot(workspace: Workspace, version: str) -> ZeroShotAnnotator:
    directory = _unique_match(zero_shot_versions_dir(workspace), version, "", "zero-shot version")
    return ZeroShotAnnotator.load(directory, workspace_encoder(workspace))


def find_versions(workspace: Workspace, prefix: str) -> list[tuple[str, str, Path]]:
    """(kind, version, path) of every taxonomy or zero-shot version named ``prefix`` (exact match wins)."""
    if not prefix or "/" in prefix or "*" in prefix:
        return []
    found = []
    if workspace.taxonomy.version.startswith(prefix):
        found.append(("taxonomy", workspace.taxonomy.version, workspace.path(workspace.config.taxonomy)))
    for path in sorted(taxonomy_dir(workspace).glob(f"{prefix}*.yaml")):
        if path.stem != workspace.taxonomy.version:
            found.append(("taxonomy", path.stem, path))
    for path in sorted(zero_shot_versions_dir(workspace).glob(f"{prefix}*")):
        found.append(("zero-shot", path.name, path))
    exact = [item for item in found if item[1] == prefix]
    return exact or found


def find_version(workspace: Workspace, prefix: str) -> tuple[str, str, Path]:
    """The one version ``prefix`` names, or an error listing what it could mean."""
    found = find_versions(workspace, prefix)
    if not found:
        raise ConfigError(
            f"no taxonomy or zero-shot version {prefix!r}; known versions are the files under "
            f"{taxonomy_dir(workspace)} and {zero_shot_versions_dir(workspace)}"
        )
    if len(found) > 1:
        raise ConfigError(f"version prefix {prefix!r} is ambiguous: {', '.join(f'{k} {v}' for k, v, _ in found)}")
    return found[0]


@dataclass(frozen=True)
class Labels:
    """An annotator's labels of some videos, with what produced them."""

    spec: str
    frame: pd.DataFrame
    version: str
    model: str
    taxonomy_version: str


def _lineage_value(frame: pd.DataFrame, column: str) -> str:
    return ",".join(sorted(set(frame[column].dropna().astype(str)) - {""}))


def zero_shot_for(workspace: Workspace, spec: str, dev: GoldenSet) -> tuple[ZeroShotAnnotator, Taxonomy]:
    """The zero-shot annotator and taxonomy a ``zero-shot[@V]`` spec names.

    ``V`` is a zero-shot version, or a taxonomy version: then thresholds are fitted on ``dev``
    for that taxonomy's definitions (how an edited definition is measured offline).
    """
    if spec == "zero-shot":
        return load_or_fit_zero_shot(workspace), workspace.taxonomy
    kind, version, path = find_version(workspace, spec.split("@", 1)[1])
    if kind == "zero-shot":
        annotator = load_zero_shot(workspace, version)
        return annotator, load_taxonomy_version(workspace, annotator.taxonomy_version_)
    taxonomy = load_taxonomy_version(workspace, path)
    if taxonomy.version == workspace.taxonomy.version:
        return load_or_fit_zero_shot(workspace), taxonomy
    dev_videos = list(workspace.catalog.subset(sorted(dev.pairs["video_id"].unique())))
    return ZeroShotAnnotator(workspace_encoder(workspace)).fit(dev_videos, taxonomy, dev), taxonomy


def check_spec(workspace: Workspace, spec: str) -> str:
    """``spec`` unchanged, or an error when it names no known version (before any split is read)."""
    if spec.startswith("zero-shot@"):
        find_version(workspace, spec.split("@", 1)[1])
    elif spec.startswith("annotations:") and not Path(spec.split(":", 1)[1]).exists():
        raise ConfigError(f"{spec}: no such annotations file or directory")
    elif spec not in ("zero-shot", "champion", "student") and not spec.startswith("annotations:"):
        raise ConfigError(f"unknown annotator {spec!r}; expected zero-shot, zero-shot@VERSION, champion, annotations:DIR or student")
    return spec


def labels(workspace: Workspace, spec: str, videos: Sequence[Video], dev: GoldenSet) -> Labels:
    """Annotations of ``videos`` by the annotator ``spec`` (see the module doc); ``dev`` fits thresholds."""
    if spec == "champion":
        from .promote import champion

        current = champion(workspace)
        if current is None:
            raise ConfigError("no champion promoted yet; run 'vibeset iterate promote VERSION'")
        spec = f"zero-shot@{current.version}"
    if spec == "zero-shot" or spec.startswith("zero-shot@"):
        annotator, taxonomy = zero_shot_for(workspace, spec, dev)
        frame = annotator.annotate(list(videos), taxonomy)
        return Labels(spec, frame, annotator.version, annotator.encoder.name, taxonomy.version)
    frame = resolve(spec, workspace, videos)
    return Labels(
        spec, frame, _lineage_value(frame, "prompt_version"), _lineage_value(frame, "model"),
        _lineage_value(frame, "taxonomy_version"),
    )
