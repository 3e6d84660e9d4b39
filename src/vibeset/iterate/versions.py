"""Versions under iteration: taxonomy (definition) versions and refined zero-shot annotators.

A taxonomy version is a YAML file ``ARTIFACTS/taxonomies/<version>.yaml`` (the user's own file is
never overwritten); a zero-shot version is a saved annotator under
``ARTIFACTS/models/zero-shot/versions/<version>/``. Both are named by content hash, so a version
string in a report or the registry always means the same thing.

Annotator specs accepted by the iterate verbs: ``zero-shot`` (the workspace's), ``zero-shot@V``
(a refined version), ``champion`` (the promoted one), and what ``vibeset evaluate`` accepts
(``annotations:DIR``, ``student``).
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
from ..errors import ConfigError, NotFittedError
from ..taxonomy import Taxonomy, load_taxonomy
from ..workspace import Workspace


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
        tmp = path.with_suffix(".tmp")
        tmp.write_text(taxonomy.to_yaml(), encoding="utf-8")
        tmp.replace(path)
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


def fit_zero_shot(workspace: Workspace, taxonomy: Taxonomy, dev_videos: Sequence[Video], dev) -> ZeroShotAnnotator:
    """A zero-shot annotator for ``taxonomy``: the workspace's own when it matches, else fitted on dev."""
    if taxonomy.version == workspace.taxonomy.version:
        return load_or_fit_zero_shot(workspace)
    return ZeroShotAnnotator(workspace_encoder(workspace)).fit(list(dev_videos), taxonomy, dev)


@dataclass(frozen=True)
class Labels:
    """An annotator's labels of some videos, with what produced them."""

    spec: str
    frame: pd.DataFrame
    version: str
    model: str
    taxonomy_version: str


def _lineage_value(frame: pd.DataFrame, column: str) -> str:
    values = sorted(set(frame[column].dropna().astype(str)) - {""})
    return ",".join(values)


def labels(
    workspace: Workspace,
    spec: str,
    videos: Sequence[Video],
    taxonomy: Taxonomy,
    *,
    dev_videos: Sequence[Video] = (),
    dev=None,
) -> Labels:
    """Annotations of ``videos`` by the annotator ``spec`` under ``taxonomy`` (see module doc)."""
    if spec == "champion":
        from .promote import champion

        current = champion(workspace)
        if current is None:
            raise ConfigError("no champion promoted yet; run 'vibeset iterate promote VERSION'")
        spec = "zero-shot@" + current.version if current.kind == "zero-shot" else "zero-shot"
        if current.kind == "taxonomy":
            taxonomy = load_taxonomy(current.path)
    if spec == "zero-shot" or spec.startswith("zero-shot@"):
        if spec == "zero-shot":
            if dev is None and taxonomy.version != workspace.taxonomy.version:
                raise ConfigError("fitting zero-shot thresholds for a new taxonomy needs the golden dev split")
            annotator = fit_zero_shot(workspace, taxonomy, dev_videos, dev)
        else:
            annotator = load_zero_shot(workspace, spec.split("@", 1)[1])
        try:
            frame = annotator.annotate(list(videos), taxonomy)
        except NotFittedError as err:
            raise ConfigError(f"{spec}: {err}") from err
        return Labels(spec, frame, annotator.version, annotator.encoder.name, taxonomy.version)
    frame = resolve(spec, workspace, videos)
    return Labels(spec, frame, _lineage_value(frame, "prompt_version"), _lineage_value(frame, "model"),
                  _lineage_value(frame, "taxonomy_version") or taxonomy.version)
