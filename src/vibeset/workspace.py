"""A workspace: the user's catalog, taxonomy, judgements and interactions, and where artifacts go.

Configured by ``vibeset.toml``; every path in it is relative to that file. The bundled
movielens-vibes data is simply the default workspace of this repository.
"""

from __future__ import annotations

import os
import tomllib
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .catalog import Catalog, CatalogColumns, load_catalog
from .errors import ConfigError
from .taxonomy import Taxonomy, load_taxonomy

CONFIG_NAME = "vibeset.toml"


class CatalogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path
    columns: CatalogColumns = CatalogColumns()


class JudgementColumns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rater: str = "rater"
    video: str = "video_id"
    tag: str = "tag"
    rating: str = "rating"


class JudgementsConfig(BaseModel):
    """Human judgements in survey format and the rule that turns them into a golden set."""

    model_config = ConfigDict(extra="forbid")
    path: Path
    columns: JudgementColumns = JudgementColumns()
    scale: tuple[float, float] = (1.0, 5.0)
    not_sure: float | None = -1.0
    consensus_threshold: float = 3.5
    rater_positive: float = 4.0
    test_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    seed: int = 0


class InteractionColumns(BaseModel):
    """Which columns hold what. ``rating``, ``weight`` and ``timestamp`` are optional: ``""`` means none.

    Without ``rating`` the interactions are implicit feedback (views, clicks): every one is a
    positive. ``weight`` (watch time, play count) sets how strongly an interaction counts.
    """

    model_config = ConfigDict(extra="forbid")
    user: str = "user_id"
    video: str = "video_id"
    rating: str | None = "rating"
    weight: str | None = None
    timestamp: str | None = "timestamp"

    @field_validator("rating", "weight", "timestamp")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class InteractionsConfig(BaseModel):
    """User interactions: explicit ratings or implicit feedback (see ``InteractionColumns``)."""

    model_config = ConfigDict(extra="forbid")
    path: Path
    columns: InteractionColumns = InteractionColumns()
    positive: float | None = Field(
        None, description="a rating at or above this is a like; unset: at or above the user's own mean rating"
    )


class PipelineConfig(BaseModel):
    """How ``vibeset run`` runs the stages: which teacher, how big a silver set, which thresholds."""

    model_config = ConfigDict(extra="forbid")
    teacher: str = Field("zero-shot", description="annotator spec of the teacher: zero-shot or llm:BACKEND:MODEL")
    silver_sample: int = Field(6000, ge=1, description="videos in the stratified Silver Set")
    seed: int = 0
    distill_objective: str = Field("precision:0.6", description="student thresholds on golden dev: f1, mcc or precision:P")
    cf_factors: int = Field(64, ge=2, description="dimension of the collaborative embeddings")


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifacts: Path = Path("out")
    taxonomy: Path
    catalog: CatalogConfig
    judgements: JudgementsConfig | None = None
    interactions: InteractionsConfig | None = None
    pipeline: PipelineConfig = PipelineConfig()
    llm: dict[str, object] = Field(default_factory=dict)  # the [llm] table, validated by vibeset.llm.LLMConfig


class Workspace:
    """Resolved workspace: configuration and its inputs, loaded lazily; reading it writes nothing."""

    def __init__(self, config: WorkspaceConfig, root: Path) -> None:
        self.config = config
        self.root = root

    def path(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else (self.root / relative)

    @property
    def artifacts(self) -> Path:
        """The artifacts directory (``vibeset.artifacts`` names everything in it)."""
        return self.path(self.config.artifacts)

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_NAME

    @cached_property
    def taxonomy(self) -> Taxonomy:
        return load_taxonomy(self.path(self.config.taxonomy))

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.path(self.config.catalog.path), self.config.catalog.columns)

    def require_judgements(self) -> JudgementsConfig:
        if self.config.judgements is None:
            raise ConfigError(f"{self.root / CONFIG_NAME}: no [judgements] section; a golden set needs human judgements")
        return self.config.judgements

    def require_interactions(self) -> InteractionsConfig:
        if self.config.interactions is None:
            raise ConfigError(f"{self.root / CONFIG_NAME}: no [interactions] section; retrieval needs user interactions")
        return self.config.interactions


def load_workspace(path: str | Path | None = None) -> Workspace:
    """Load ``vibeset.toml`` from ``path`` (a file or directory), $VIBESET_WORKSPACE, or the cwd."""
    path = Path(path or os.environ.get("VIBESET_WORKSPACE") or ".")
    file = path / CONFIG_NAME if path.is_dir() else path
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{file}: cannot read workspace config ({err.strerror}); run 'vibeset init' to write one") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: invalid TOML: {err}") from err
    try:
        config = WorkspaceConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{file}: {where}: {first['msg']}") from err
    return Workspace(config, file.parent.resolve())


TEMPLATE = """\
# vibeset workspace. Paths are relative to this file.
# Where artifacts (embeddings, annotations, models, indexes, reports) are written.
artifacts = "out"
# The attribute taxonomy (YAML): name, definition, includes, excludes, aliases.
taxonomy = "taxonomy.yaml"

[catalog]
# CSV, JSONL or Parquet; one row per video.
path = "catalog.csv"
[catalog.columns]
id = "video_id"
title = "title"
description = "description"
# transcript = "transcript"
# tags = "tags"            # a separated list, e.g. genres or categories
# tags_separator = "|"
# media = "video_path"     # a local video file for frame sampling
require_text = "description"  # rows with an empty value here are skipped

# Human judgements in survey format: one row per (rater, video, tag, rating).
[judgements]
path = "judgements.csv"
scale = [1, 5]
not_sure = -1               # ratings equal to this are dropped
consensus_threshold = 3.5   # a pair is positive when the mean rating reaches this
rater_positive = 4          # a single rater says "yes" at this rating
test_fraction = 0.5         # share of videos in the golden test split
[judgements.columns]
rater = "rater"
video = "video_id"
tag = "tag"
rating = "rating"

# User interactions for collaborative embeddings and retrieval.
[interactions]
path = "interactions.csv"
[interactions.columns]
user = "user_id"
video = "video_id"
rating = "rating"
timestamp = "timestamp"
"""
