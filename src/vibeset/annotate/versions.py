"""Versions under iteration: taxonomy (definition) versions and refined zero-shot annotators.

A taxonomy version is an artifact ``taxonomies/<version>/taxonomy.yaml`` (the user's own file is
never overwritten); a zero-shot version is a saved annotator ``models/zero-shot/versions/<version>/``.
Both are named by content hash, so a version string in a report or the registry always means the
same thing. Versions are found by a unique prefix, like git objects.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import Artifact, Stamp, artifacts_of
from ..encoder import workspace_encoder
from ..errors import ConfigError
from ..taxonomy import Taxonomy, load_taxonomy
from ..workspace import Workspace
from .zeroshot import ZeroShotAnnotator

TAXONOMY_FILE = "taxonomy.yaml"
VERSION_KINDS = {"taxonomy": "taxonomy-version", "zero-shot": "zero-shot-version"}


def _versions(workspace: Workspace, kind: str) -> list[Artifact]:
    parent = artifacts_of(workspace).get(VERSION_KINDS[kind], "x").path.parent
    if not parent.is_dir():
        return []
    return [artifacts_of(workspace).get(VERSION_KINDS[kind], p.name) for p in sorted(parent.iterdir())
            if p.is_dir() and not p.name.startswith(".")]


def save_taxonomy(workspace: Workspace, taxonomy: Taxonomy, run_id: str) -> Path:
    """Write ``taxonomy`` as a version (idempotent: the name is its content hash); returns its YAML file."""
    artifact = artifacts_of(workspace).get("taxonomy-version", taxonomy.version)
    if not artifact.exists():
        with artifact.replace(Stamp(run_id, stage="iterate", lineage={"taxonomy_version": taxonomy.version})) as staging:
            (staging / TAXONOMY_FILE).write_text(taxonomy.to_yaml(), encoding="utf-8")
    return artifact.path / TAXONOMY_FILE


def save_zero_shot(workspace: Workspace, annotator: ZeroShotAnnotator, run_id: str) -> str:
    """Save a fitted zero-shot annotator as a version; returns the version."""
    annotator.save(artifacts_of(workspace).get("zero-shot-version", annotator.version), Stamp(run_id, stage="iterate"))
    return annotator.version


def find_versions(workspace: Workspace, prefix: str) -> list[tuple[str, str, Path]]:
    """(kind, version, path) of every taxonomy or zero-shot version named ``prefix`` (an exact match wins).

    ``path`` is the taxonomy's YAML file, or the zero-shot version's directory.
    """
    if not prefix or "/" in prefix or "*" in prefix:
        return []
    found = []
    own = workspace.taxonomy.version
    if own.startswith(prefix):
        found.append(("taxonomy", own, workspace.path(workspace.config.taxonomy)))
    for artifact in _versions(workspace, "taxonomy"):
        if artifact.name.startswith(prefix) and artifact.name != own:
            found.append(("taxonomy", artifact.name, artifact.path / TAXONOMY_FILE))
    for artifact in _versions(workspace, "zero-shot"):
        if artifact.name.startswith(prefix):
            found.append(("zero-shot", artifact.name, artifact.path))
    exact = [item for item in found if item[1] == prefix]
    return exact or found


def find_version(workspace: Workspace, prefix: str) -> tuple[str, str, Path]:
    """The one version ``prefix`` names, or an error listing what it could mean."""
    found = find_versions(workspace, prefix)
    if not found:
        raise ConfigError(
            f"no taxonomy or zero-shot version {prefix!r}; 'vibeset iterate refine' makes versions "
            f"(under {artifacts_of(workspace).root})"
        )
    if len(found) > 1:
        raise ConfigError(f"version prefix {prefix!r} is ambiguous: {', '.join(f'{k} {v}' for k, v, _ in found)}")
    return found[0]


def load_taxonomy_version(workspace: Workspace, spec: str | Path) -> Taxonomy:
    """A taxonomy by YAML path or by (a unique prefix of) its version."""
    if Path(spec).suffix in (".yaml", ".yml"):
        return load_taxonomy(spec)
    if spec == workspace.taxonomy.version:
        return workspace.taxonomy
    kind, _, path = find_version(workspace, str(spec))
    if kind != "taxonomy":
        raise ConfigError(f"{spec!r} is a zero-shot version, not a taxonomy version")
    return load_taxonomy(path)


def load_zero_shot_version(workspace: Workspace, version: str) -> ZeroShotAnnotator:
    kind, full, _ = find_version(workspace, version)
    if kind != "zero-shot":
        raise ConfigError(f"{version!r} is a taxonomy version, not a zero-shot version")
    return ZeroShotAnnotator.load(artifacts_of(workspace).get("zero-shot-version", full), workspace_encoder(workspace))
