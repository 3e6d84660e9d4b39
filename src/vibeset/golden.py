"""The Golden Set: consensus labels built from human judgements by an explicit rule.

Judgements come in survey format (rater, video, tag, rating). Tags map to attributes
through the taxonomy's aliases; "not sure" answers are dropped; a rater who answered
several aliases of one attribute for one video counts once (mean of their answers).
A pair is positive when the mean over raters reaches the consensus threshold. Videos
are split dev/test deterministically by a hash of their id, so a video never straddles
splits. Individual raters are kept so the single-rater baseline can be scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import Artifact, Stamp
from .catalog import Catalog
from .errors import DataError
from .hashing import content_hash
from .judgements import read_judgements
from .reviews import review_judgements
from .taxonomy import Taxonomy
from .workspace import JudgementsConfig, Workspace

JUDGEMENT_COLUMNS = ("rater", "video_id", "attribute", "rating")
TARGETS = ("consensus", "share", "rating")


@dataclass
class GoldenSet:
    """Consensus pairs plus the individual judgements behind them.

    ``pairs``: video_id, attribute, n_raters, mean_rating, label, split.
    ``judgements``: rater, video_id, attribute, rating (one per rater and pair).
    """

    pairs: pd.DataFrame
    judgements: pd.DataFrame
    threshold: float
    rater_positive: float
    skipped_videos: int = 0
    unmatched_tags: dict[str, int] = field(default_factory=dict)  # judged tags that match no attribute: rows
    scale: tuple[float, float] = (1.0, 5.0)

    @property
    def version(self) -> str:
        return content_hash(
            [self.threshold, self.pairs[["video_id", "attribute", "mean_rating", "split"]].to_numpy().tolist()]
        )

    @property
    def attributes(self) -> list[str]:
        return sorted(self.pairs["attribute"].unique())

    def split(self, name: str | None) -> "GoldenSet":
        """The golden set restricted to one split ('dev' or 'test'); None keeps all."""
        if name is None:
            return self
        if name not in ("dev", "test"):
            raise DataError(f"unknown golden split {name!r}; expected 'dev' or 'test'")
        videos = set(self.pairs.loc[self.pairs["split"] == name, "video_id"])
        return GoldenSet(
            self.pairs[self.pairs["video_id"].isin(videos)].reset_index(drop=True),
            self.judgements[self.judgements["video_id"].isin(videos)].reset_index(drop=True),
            self.threshold,
            self.rater_positive,
            self.skipped_videos,
            self.unmatched_tags,
            self.scale,
        )

    def targets(self, kind: str = "consensus") -> np.ndarray:
        """What a learner trains on for each of ``pairs`` (in order); evaluation keeps the consensus label.

        ``consensus``: the label (mean rating >= threshold). ``share``: how many raters said yes
        (rating >= threshold), as a share smoothed towards one half, so a pair three raters agree on
        weighs more than one rater's word. ``rating``: the mean rating on [0, 1] over the scale: how
        strongly the raters felt it, the graded signal the consensus cut throws away.
        """
        if kind == "consensus":
            return self.pairs["label"].to_numpy(float)
        if kind == "rating":
            low, high = self.scale
            return np.clip((self.pairs["mean_rating"].to_numpy(float) - low) / max(high - low, 1e-9), 0.0, 1.0)
        if kind == "share":
            yes = (self.judgements.assign(yes=self.judgements["rating"] >= self.threshold)
                   .groupby(["video_id", "attribute"])["yes"].sum())
            said = yes.reindex(pd.MultiIndex.from_frame(self.pairs[["video_id", "attribute"]])).fillna(0).to_numpy(float)
            return (said + 0.5) / (self.pairs["n_raters"].to_numpy(float) + 1.0)
        raise DataError(f"unknown golden target {kind!r}; expected one of {', '.join(TARGETS)}")

    def summary(self) -> dict[str, float | int]:
        return {
            "pairs": int(len(self.pairs)),
            "videos": int(self.pairs["video_id"].nunique()),
            "attributes": int(self.pairs["attribute"].nunique()),
            "prevalence": float(self.pairs["label"].mean()) if len(self.pairs) else 0.0,
            "judgements": int(len(self.judgements)),
            "skipped_videos": int(self.skipped_videos),
            "unmatched_judgements": int(sum(self.unmatched_tags.values())),
            "unmatched_tags": dict(self.unmatched_tags),
        }


def split_of(video_id: str, test_fraction: float, seed: int) -> str:
    """Deterministic dev/test assignment from a hash of the id (stable across catalogs)."""
    bucket = int(content_hash(f"{seed}:{video_id}", 8), 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "dev"


def build_golden(
    judgements: pd.DataFrame,
    taxonomy: Taxonomy,
    config: JudgementsConfig,
    catalog: Catalog | None = None,
) -> GoldenSet:
    """Map tags to attributes, drop not-sure, aggregate per rater, then take the consensus."""
    frame = judgements
    if config.not_sure is not None:
        frame = frame[frame["rating"] != config.not_sure]
    frame = frame.assign(attribute=frame["tag"].map(taxonomy.alias_map()))
    unmatched = frame.loc[frame["attribute"].isna(), "tag"].value_counts()
    frame = frame.dropna(subset=["attribute"])
    skipped = 0
    if catalog is not None:
        known = frame["video_id"].isin(set(catalog.ids))
        skipped = int(frame.loc[~known, "video_id"].nunique())
        frame = frame[known]
    per_rater = frame.groupby(["video_id", "attribute", "rater"], as_index=False)["rating"].mean()
    pairs = per_rater.groupby(["video_id", "attribute"], as_index=False).agg(
        n_raters=("rating", "size"), mean_rating=("rating", "mean")
    )
    pairs["label"] = pairs["mean_rating"] >= config.consensus_threshold
    pairs["split"] = [split_of(v, config.test_fraction, config.seed) for v in pairs["video_id"]]
    return GoldenSet(
        pairs.sort_values(["video_id", "attribute"]).reset_index(drop=True),
        per_rater[list(JUDGEMENT_COLUMNS)].reset_index(drop=True),
        config.consensus_threshold,
        config.rater_positive,
        skipped,
        {str(tag): int(n) for tag, n in unmatched.items()},
        tuple(config.scale),
    )


def workspace_golden(workspace: Workspace, path: str | Path | None = None) -> GoldenSet:
    """The golden set of a workspace (plus its reviews), or of another survey-format file under its rules."""
    config = workspace.require_judgements()
    source = Path(path) if path else workspace.path(config.path)
    judgements = read_judgements(source, config)
    if path is None:  # reviews added in the web UI join the workspace's own golden set
        judgements = pd.concat([judgements, review_judgements(workspace)], ignore_index=True)
    return build_golden(judgements, workspace.taxonomy, config, workspace.catalog)


def agreement_report(golden: GoldenSet) -> pd.DataFrame:
    """Per attribute: pairs, mean raters per pair, prevalence, Krippendorff's alpha (interval)."""
    import krippendorff

    rows = []
    for attribute, judgements in golden.judgements.groupby("attribute"):
        pairs = golden.pairs[golden.pairs["attribute"] == attribute]
        matrix = judgements.pivot_table(index="rater", columns="video_id", values="rating", aggfunc="mean")
        multi = matrix.loc[:, matrix.notna().sum(axis=0) >= 2]
        alpha = (
            float(krippendorff.alpha(reliability_data=multi.to_numpy(), level_of_measurement="interval"))
            if multi.shape[1] >= 2 and np.nanvar(multi.to_numpy()) > 0
            else float("nan")
        )
        rows.append(
            {
                "attribute": attribute,
                "pairs": len(pairs),
                "multi_rater_pairs": int((pairs["n_raters"] >= 2).sum()),
                "raters_per_pair": float(pairs["n_raters"].mean()),
                "prevalence": float(pairs["label"].mean()),
                "alpha": alpha,
            }
        )
    return pd.DataFrame(rows, columns=["attribute", "pairs", "multi_rater_pairs", "raters_per_pair", "prevalence", "alpha"])


def save_golden(golden: GoldenSet, artifact: Artifact, stamp: Stamp) -> pd.DataFrame:
    """Write the golden artifact (pairs, judgements, agreement per attribute); returns the agreement table."""
    agreement = agreement_report(golden)
    stamp.lineage = {"golden_version": golden.version, **(stamp.lineage or {})}
    stamp.meta = {**golden.summary(), "version": golden.version, "threshold": golden.threshold}
    with artifact.replace(stamp) as staging:
        golden.pairs.to_parquet(staging / "pairs.parquet", index=False)
        golden.judgements.to_parquet(staging / "judgements.parquet", index=False)
        agreement.to_parquet(staging / "agreement.parquet", index=False)
    return agreement
