"""A workspace: the user's catalog, taxonomy, judgements and interactions, and where artifacts go.

Configured by ``vibeset.toml``; every path in it is relative to that file. The bundled
movielens-vibes data is simply the default workspace of this repository.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

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
    rater: str = Field("rater", min_length=1)
    video: str = Field("video_id", min_length=1)
    tag: str = Field("tag", min_length=1)
    rating: str = Field("rating", min_length=1)


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
    user: str = Field("user_id", min_length=1)
    video: str = Field("video_id", min_length=1)
    rating: str | None = "rating"
    weight: str | None = None
    timestamp: str | None = "timestamp"

    @field_validator("rating", "weight", "timestamp", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class InteractionsConfig(BaseModel):
    """User interactions: explicit ratings or implicit feedback (see ``InteractionColumns``)."""

    model_config = ConfigDict(extra="forbid")
    path: Path
    columns: InteractionColumns = InteractionColumns()
    positive: float | None = Field(
        None, description="a rating at or above this is a like; unset: at or above the user's own mean rating"
    )


RESERVED_SOURCE_NAMES = ("text", "tags", "cf", "sources", "frames", "zero-shot", "tag-similarity", "llm")


class TagSourceConfig(BaseModel):
    """An extra tag source: a table of video id + tag (user tags, keywords, a community's labels)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    path: Path
    video: str = Field("video_id", description="the column holding the video id")
    tag: str = Field("tag", description="the column holding the tag (or several, see separator)")
    separator: str | None = Field(None, description="several tags in one cell, split on this")
    min_videos: int = Field(3, ge=1, description="tags on fewer catalog videos are dropped")

    @field_validator("name")
    @classmethod
    def _not_a_group(cls, value: str) -> str:
        if value in RESERVED_SOURCE_NAMES:
            raise ValueError(f"{value!r} names an evidence group already; choose another tag source name")
        return value


class PipelineConfig(BaseModel):
    """How ``vibeset run`` runs the stages: which teacher, how big a silver set, which thresholds."""

    model_config = ConfigDict(extra="forbid")
    teacher: str = Field("evidence", description="annotator spec of the teacher: evidence, zero-shot or llm:BACKEND:MODEL")
    silver_sample: int = Field(6000, ge=1, description="videos in the stratified Silver Set")
    seed: int = 0
    distill_objective: str = Field("precision:0.6", description="catalog thresholds: precision:P at each vibe's "
                                   "estimated catalog base rate, or f1 / mcc on golden dev")
    base_rate: Literal["bounds", "em", "mean"] = Field("bounds", description="how a vibe's catalog base rate is estimated "
                                                       "where the taxonomy declares none (vibeset.calibration.base_rate)")
    max_auc_loss: float = Field(0.02, ge=0, description="distill refuses a student that loses more golden-dev AUC "
                                "than this to its teacher")
    cf_factors: int = Field(64, ge=2, description="dimension of the collaborative embeddings")
    ranker_epochs: int = Field(5, ge=1, description="training epochs of the sequential (SASRec) ranker")
    encoder: Literal["fp32", "int8"] = Field("fp32", description="MiniLM precision: fp32 ONNX (the reference, fastest on "
                                             "CPUs without fast int8 kernels) or int8")


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: str = Field("videos", min_length=1, max_length=40, pattern=r"^[^\[\]{}<>]+$",
                        description="what the catalog's items are called in messages, a plural noun: videos, films, podcasts")
    artifacts: Path = Path("out")
    taxonomy: Path
    catalog: CatalogConfig
    judgements: JudgementsConfig | None = None
    interactions: InteractionsConfig | None = None
    pipeline: PipelineConfig = PipelineConfig()
    tag_sources: list[TagSourceConfig] = Field(default_factory=list, description="[[tag_sources]] tables")
    llm: dict[str, object] = Field(default_factory=dict)  # the [llm] table, validated by vibeset.llm.LLMConfig

    @field_validator("tag_sources")
    @classmethod
    def _unique_sources(cls, value: list[TagSourceConfig]) -> list[TagSourceConfig]:
        names = [source.name for source in value]
        if len(set(names)) != len(names):
            raise ValueError(f"tag source names must be unique, got {names}")
        return value


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


#: The starter workspace ``vibeset init`` writes: a commented config and taxonomy, and small sample files.
STARTER_FILES = ("vibeset.toml", "taxonomy.yaml", "catalog.csv", "judgements.csv", "interactions.csv")


def init_workspace(directory: str | Path, *, force: bool = False) -> list[Path]:
    """Write the starter workspace into ``directory``; refuses to overwrite any file unless ``force``."""
    directory = Path(directory)
    targets = [directory / name for name in STARTER_FILES]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise ConfigError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        starter = resources.files("vibeset").joinpath("starter")
        for target in targets:
            with resources.as_file(starter.joinpath(target.name)) as source:
                shutil.copyfile(source, target)
    except OSError as err:
        raise ConfigError(f"{directory}: cannot write the starter workspace ({err.strerror or err})") from err
    return targets
