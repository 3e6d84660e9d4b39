"""What humans should judge next: every (video, vibe) pair ranked by the value of one more judgement.

The value of a judgement is a weighted sum of four signals in [0, 1], each cheap to read from what
the pipeline already wrote (the annotations artifacts and the golden set; nothing is fitted here):

- **uncertainty**: annotators' scores near 0.5 (1 - |2s - 1|, averaged over annotators);
- **disagreement**: the largest of annotators disagreeing with each other, the human raters
  disagreeing with each other, and annotators contradicting the human consensus (golden dev only,
  so the queue never steers reviewers towards re-labelling the test split's errors);
- **scarcity**: vibes with few golden pairs (1 / (1 + pairs / 30));
- **novelty**: videos nobody has judged (1), pairs nobody has judged (0.5), else a little for each
  missing rater.

Filters narrow the queue to one vibe, to the pairs one annotator labels positive (a precision audit
of what restricted retrieval would serve), to one annotator's errors on golden dev, to videos never
judged, or to disagreements. A rater never sees a pair they already judged.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from .artifacts import artifacts_of
from .annotation import read_annotations
from .golden import GoldenSet
from .reviews import NAMESPACE, active_reviews
from .workspace import Workspace

WEIGHTS = {"uncertainty": 0.35, "disagreement": 0.30, "scarcity": 0.20, "novelty": 0.15}
SCARCITY_PAIRS = 30
KINDS = {
    "ranked": "every pair, most valuable first",
    "new": "videos nobody has judged",
    "disagreement": "pairs where annotators or raters disagree",
    "positive": "pairs the annotator labels positive (what retrieval would serve)",
    "errors": "the annotator's errors on golden dev",
    "fp": "the annotator's false positives on golden dev",
    "fn": "the annotator's false negatives on golden dev",
}
NEEDS_ANNOTATOR = ("positive", "errors", "fp", "fn")


def workspace_annotations(workspace: Workspace) -> dict[str, pd.DataFrame]:
    """Every complete annotations artifact of the workspace, by name."""
    catalog = artifacts_of(workspace)
    return {name: read_annotations(catalog.annotations(name)) for name in catalog.annotation_names()}


def _wide(index: pd.MultiIndex, table: pd.DataFrame, names: list[str]) -> tuple[pd.Series, pd.Series]:
    table = table[table["attribute"].isin(names)].drop_duplicates(["video_id", "attribute"], keep="last")
    table = table.set_index(["video_id", "attribute"])
    return table["label"].astype(float).reindex(index), table["score"].astype(float).reindex(index)


def _human(golden: GoldenSet, index: pd.MultiIndex) -> pd.DataFrame:
    pairs = golden.pairs.set_index(["video_id", "attribute"])
    yes = golden.judgements.assign(yes=golden.judgements["rating"] >= golden.rater_positive)
    share = yes.groupby(["video_id", "attribute"])["yes"].mean()
    return pd.DataFrame({
        "n_raters": pairs["n_raters"].reindex(index).fillna(0).astype(int),
        "mean_rating": pairs["mean_rating"].reindex(index),
        "human": pairs["label"].astype(float).reindex(index),
        "split": pairs["split"].reindex(index).fillna(""),
        "rater_yes_share": share.reindex(index),
    })


def rank_pairs(workspace: Workspace, golden: GoldenSet, annotations: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every catalog video x taxonomy attribute with its signals, its value and each annotator's label and score.

    Indexed by (video_id, attribute); columns ``value``, the four signals, ``d_models``, ``d_humans``,
    ``d_error``, the human columns of ``_human`` and ``label:NAME`` / ``score:NAME`` per annotator.
    """
    names = workspace.taxonomy.names
    index = pd.MultiIndex.from_product([workspace.catalog.ids, names], names=["video_id", "attribute"])
    frame = _human(golden, index)
    for name, table in annotations.items():
        frame[f"label:{name}"], frame[f"score:{name}"] = _wide(index, table, names)
    labels = frame[[f"label:{n}" for n in annotations]].to_numpy(float).reshape(len(frame), len(annotations))
    scores = frame[[f"score:{n}" for n in annotations]].to_numpy(float).reshape(len(frame), len(annotations))
    with _quiet():
        uncertainty = np.nanmean(1 - np.abs(2 * np.clip(scores, 0, 1) - 1), axis=1)
        agree = np.nanmean(labels, axis=1)
    counted = np.isfinite(labels).sum(axis=1)
    frame["uncertainty"] = np.where(np.isfinite(uncertainty), uncertainty, 0.5)
    frame["d_models"] = np.where(counted >= 2, 4 * agree * (1 - agree), 0.0)
    share = frame["rater_yes_share"].to_numpy(float)
    frame["d_humans"] = np.where((frame["n_raters"] >= 2) & np.isfinite(share), 4 * share * (1 - share), 0.0)
    human = frame["human"].to_numpy(float)[:, None]
    wrong = np.where(np.isfinite(labels) & np.isfinite(human), labels != human, np.nan)
    with _quiet():
        error = np.nanmean(wrong, axis=1)
    frame["d_error"] = np.where((frame["split"] == "dev") & np.isfinite(error), error, 0.0)
    frame["disagreement"] = frame[["d_models", "d_humans", "d_error"]].max(axis=1)
    pairs = golden.pairs["attribute"].value_counts().reindex(names, fill_value=0)
    frame["golden_pairs"] = pairs.reindex(frame.index.get_level_values("attribute")).to_numpy()
    frame["scarcity"] = 1 / (1 + frame["golden_pairs"] / SCARCITY_PAIRS)
    judged_videos = set(golden.pairs["video_id"])
    never = ~frame.index.get_level_values("video_id").isin(judged_videos)
    n = frame["n_raters"].to_numpy()
    frame["novelty"] = np.where(never, 1.0, np.where(n == 0, 0.5, 0.25 / np.maximum(n, 1)))
    frame["value"] = sum(weight * frame[signal] for signal, weight in WEIGHTS.items())
    return frame


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """nanmean over all-NaN rows is expected here (pairs nobody labelled)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def select(ranked: pd.DataFrame, *, kind: str = "ranked", attribute: str | None = None, annotator: str | None = None,
           exclude: Iterable[tuple[str, str]] = ()) -> pd.DataFrame:
    """The queue: ``ranked`` filtered by kind, vibe and annotator, without ``exclude``, most valuable first."""
    frame = ranked
    if attribute:
        frame = frame[frame.index.get_level_values("attribute") == attribute]
    if kind in NEEDS_ANNOTATOR:
        label = frame[f"label:{annotator}"]
        human = frame["human"]
        on_dev = (frame["split"] == "dev") & human.notna() & label.notna()
        keep = {"positive": label == 1, "errors": on_dev & (label != human), "fp": on_dev & (label == 1) & (human == 0),
                "fn": on_dev & (label == 0) & (human == 1)}[kind]
        frame = frame[keep]
    elif kind == "new":
        frame = frame[frame["novelty"] >= 1.0]
    elif kind == "disagreement":
        frame = frame[frame["disagreement"] > 0]
    done = pd.MultiIndex.from_tuples(list(exclude), names=["video_id", "attribute"]) if exclude else None
    if done is not None:
        frame = frame[~frame.index.isin(done)]
    order = "disagreement" if kind == "disagreement" else "value"
    return frame.sort_values([order, "value"], ascending=False, kind="stable")


def reasons(row: Mapping[str, Any]) -> list[str]:
    """Why a pair is in the queue, in words (never the labels themselves: judging stays blind)."""
    out = []
    if row["novelty"] >= 1.0:
        out.append("nobody has judged this video")
    elif row["n_raters"] == 0:
        out.append("nobody has judged this vibe of it")
    if row["d_models"] >= 0.5:
        out.append("annotators disagree")
    if row["d_humans"] >= 0.5:
        out.append("raters disagree")
    if row["d_error"] > 0:
        out.append("an annotator contradicts the raters")
    if row["uncertainty"] >= 0.6:
        out.append("annotators are unsure")
    if row["scarcity"] >= 0.5:
        out.append(f"this vibe has only {int(row['golden_pairs'])} golden pairs")
    return out


@dataclass(frozen=True)
class Agreement:
    """How a reviewer's judgements compare with the other raters and with each annotator."""

    judged: int
    with_raters: tuple[int, int]  # (agreed, compared) against the other raters' consensus
    with_annotators: dict[str, tuple[int, int]]


def rater_agreement(workspace: Workspace, rater: str, golden: GoldenSet, ranked: pd.DataFrame) -> Agreement:
    """The reviewer's judgements in force against everyone else's, pair by pair (yes = rating >= rater_positive)."""
    mine = active_reviews(workspace)
    mine = mine[mine["rater"] == rater].drop_duplicates(["video_id", "attribute"], keep="last")
    mine = mine[[video in workspace.catalog for video in mine["video_id"]]]
    if mine.empty:
        return Agreement(0, (0, 0), {})
    yes = (mine["rating"] >= golden.rater_positive).to_numpy()
    keys = pd.MultiIndex.from_frame(mine[["video_id", "attribute"]])
    others = golden.judgements[golden.judgements["rater"] != NAMESPACE + rater]
    consensus = others.groupby(["video_id", "attribute"])["rating"].mean().reindex(keys)
    seen = consensus.notna().to_numpy()
    agreed = int(((consensus.to_numpy() >= golden.threshold) == yes)[seen].sum())
    with_annotators = {}
    for column in (c for c in ranked.columns if c.startswith("label:")):
        label = ranked[column].reindex(keys).to_numpy(float)
        known = np.isfinite(label)
        if known.any():
            with_annotators[column[len("label:"):]] = (int(((label == 1) == yes)[known].sum()), int(known.sum()))
    return Agreement(len(mine), (agreed, int(seen.sum())), with_annotators)


def pair_detail(golden: GoldenSet, ranked: pd.DataFrame, video_id: str, attribute: str) -> dict[str, Any]:
    """Everyone's view of one pair: each rater's rating, the consensus, each annotator's label and score."""
    judged = golden.judgements[(golden.judgements["video_id"] == video_id) & (golden.judgements["attribute"] == attribute)]
    row = ranked.loc[(video_id, attribute)] if (video_id, attribute) in ranked.index else None
    annotators = {}
    if row is not None:
        for column in (c for c in ranked.columns if c.startswith("label:")):
            name = column[len("label:"):]
            if np.isfinite(row[column]):
                annotators[name] = {"label": bool(row[column] == 1), "score": row[f"score:{name}"]}
    mean = float(judged["rating"].mean()) if len(judged) else None
    return {"ratings": list(zip(judged["rater"], judged["rating"])), "mean": mean,
            "consensus": None if mean is None else mean >= golden.threshold, "annotators": annotators}


__all__ = ["KINDS", "WEIGHTS", "Agreement", "pair_detail", "rank_pairs", "rater_agreement", "reasons", "select",
           "workspace_annotations"]
