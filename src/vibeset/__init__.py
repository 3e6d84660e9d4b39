"""vibeset: nuanced video attributes ("vibes") turned into labels a recommender can use.

A library first, a CLI second. The public API is the names in ``__all__``; each is imported on
first use, so ``import vibeset`` is cheap and creates no import cycle::

    import vibeset

    ws = vibeset.load_workspace("path/to/vibeset.toml")
    outcomes, run_id = vibeset.run_pipeline(ws)          # what `vibeset run` does
    labels = vibeset.read_annotations(vibeset.artifacts_of(ws).annotations("student"))
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

_EXPORTS = {
    "vibeset.workspace": ("Workspace", "load_workspace"),
    "vibeset.taxonomy": ("Attribute", "Taxonomy", "load_taxonomy"),
    "vibeset.catalog": ("Catalog", "Video", "load_catalog", "video_text"),
    "vibeset.golden": ("GoldenSet", "workspace_golden"),
    "vibeset.annotation": ("Annotator", "read_annotations"),
    "vibeset.artifacts": ("Artifact", "Artifacts", "artifacts_of"),
    "vibeset.runs": ("Run", "get_run", "golden_split", "list_runs", "taxonomy_in_use"),
    "vibeset.pipeline": ("STAGES", "run_pipeline", "run_stage"),
    "vibeset.annotators": ("evaluate_specs", "labels", "parse_spec"),
    "vibeset.evaluation": ("evaluate_all", "verdict"),
    "vibeset.annotate.zeroshot": ("ZeroShotAnnotator",),
    "vibeset.distill.student": ("Student", "load_student"),
    "vibeset.llm.config": ("LLMConfig",),
    "vibeset.retrieval.index": ("load_index",),
    "vibeset.retrieval.recommender": ("Recommender",),
    "vibeset.serve.api": ("create_app",),
    "vibeset.errors": ("ArtifactError", "BackendError", "ConfigError", "DataError", "LockedError", "NotFittedError",
                       "UnknownAttributeError", "VibesetError"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]

try:
    __version__ = version("vibeset")
except PackageNotFoundError:  # pragma: no cover - a source tree without install
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'vibeset' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
