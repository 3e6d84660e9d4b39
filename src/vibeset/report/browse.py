"""Error analysis in the report: confusion matrices, and a browsable table of every golden pair with the
video's text, the human ratings and each annotator's label and evidence (filterable without a script)."""

from __future__ import annotations

import pandas as pd

from ..metrics import fmt
from ..workspace import Workspace
from .sections import Browse, Evaluation, Section, Table

MAX_ROWS = 2500  # pairs in the browsable table; disagreements are kept first when there are more
TEXT = 220  # characters of a video's description shown
EVIDENCE = 160


def _joined(ev: Evaluation) -> pd.DataFrame:
    """Golden pairs with each annotator's label and score as columns ``label:NAME`` / ``score:NAME``."""
    frame = ev.golden.pairs[["video_id", "attribute", "n_raters", "mean_rating", "label"]].rename(columns={"label": "human"})
    for name, table in ev.tables.items():
        mine = table.drop_duplicates(["video_id", "attribute"], keep="last")[["video_id", "attribute", "label", "score", "evidence"]]
        mine = mine.rename(columns={"label": f"label:{name}", "score": f"score:{name}", "evidence": f"evidence:{name}"})
        frame = frame.merge(mine, on=["video_id", "attribute"], how="left")
    return frame


def confusion_section(ev: Evaluation) -> Section:
    """TP / FP / FN / TN of every annotator on the golden pairs, pooled and per vibe."""
    section = Section("confusion", "Confusion matrices",
                      f"Each annotator's labels against the human consensus on the golden {ev.report['golden'].get('split', '')} "
                      "pairs it labelled: pooled, then per vibe.")
    if not ev.tables:
        section.missing = "no annotator labels on these golden pairs"
        return section
    frame = _joined(ev)
    pooled = []
    for name in ev.tables:
        labelled = frame[frame[f"label:{name}"].notna()]
        counts = _counts(labelled["human"].astype(bool), labelled[f"label:{name}"].astype(bool))
        pooled.append([name, *map(fmt, counts), fmt(_ratio(counts[0], counts[0] + counts[1])), fmt(_ratio(counts[0], counts[0] + counts[2]))])
        rows = []
        for attribute, group in labelled.groupby("attribute"):
            c = _counts(group["human"].astype(bool), group[f"label:{name}"].astype(bool))
            rows.append([attribute, *map(fmt, c), fmt(_ratio(c[0], c[0] + c[1])), fmt(_ratio(c[0], c[0] + c[2]))])
        section.tables.append(Table(["vibe", "TP", "FP", "FN", "TN", "precision", "recall"], rows, f"{name} per vibe", collapsed=True))
    section.tables.insert(0, Table(["annotator", "TP", "FP", "FN", "TN", "precision", "recall"], pooled,
                                   "Pooled over every vibe (rows: human yes/no; TP = both yes)"))
    return section


def _counts(human: pd.Series, label: pd.Series) -> tuple[int, int, int, int]:
    return (int((human & label).sum()), int((~human & label).sum()), int((human & ~label).sum()), int((~human & ~label).sum()))


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def browse_section(ev: Evaluation, workspace: Workspace) -> Section:
    """Every golden pair of the evaluated split: video text, the raters' ratings, each annotator's label and evidence."""
    section = Section("browse", "Browse the golden pairs",
                      "Every evaluated pair with what the humans and each annotator said. Pick a vibe or a kind of "
                      "disagreement to filter (no script: the filters are CSS).")
    frame = _joined(ev)
    if frame.empty:
        section.missing = "no golden pairs on this split"
        return section
    names = list(ev.tables)
    labels = frame[[f"label:{n}" for n in names]].astype(float) if names else pd.DataFrame(index=frame.index)
    human = frame["human"].astype(float)
    contradicts = labels.ne(human, axis=0) & labels.notna()
    frame["contradicts"] = contradicts.any(axis=1)
    frame["split_vote"] = labels.nunique(axis=1) > 1 if names else False
    frame = frame.sort_values(["contradicts", "video_id", "attribute"], ascending=[False, True, True], kind="stable")
    kept = frame.head(MAX_ROWS)
    ratings = ev.golden.judgements.groupby(["video_id", "attribute"])["rating"].apply(lambda r: ", ".join(f"{v:g}" for v in r))
    rows = []
    for record in kept.to_dict("records"):
        video = workspace.catalog.get(record["video_id"]) if record["video_id"] in workspace.catalog else None
        classes = ["dis"] if record["contradicts"] else []
        if record["split_vote"]:
            classes.append("x")
        cells, evidence = [], ""
        for i, name in enumerate(names):
            label = record[f"label:{name}"]
            if pd.isna(label):
                cells.append("–")
                continue
            cells.append(f"{'yes' if label else 'no'} {fmt(record[f'score:{name}'], digits=2)}")
            if label and not record["human"]:
                classes.append(f"fp{i}")
            elif not label and record["human"]:
                classes.append(f"fn{i}")
            evidence = evidence or str(record[f"evidence:{name}"] or "")
        rows.append({"vibe": record["attribute"], "classes": " ".join(classes), "cells": [
            video.title if video else record["video_id"], _short(video.description, TEXT) if video else "", record["attribute"],
            f"{'yes' if record['human'] else 'no'} {record['mean_rating']:.1f} ({ratings.get((record['video_id'], record['attribute']), '')})",
            *cells, _short(evidence, EVIDENCE)]})
    filters = [("dis", "an annotator contradicts the raters"), ("x", "annotators disagree")]
    filters += [(f"{kind}{i}", f"{name}: false {word}") for i, name in enumerate(names) for kind, word in (("fp", "positives"), ("fn", "negatives"))]
    note = f"Showing {len(kept):,} of {len(frame):,} pairs (disagreements first)." if len(frame) > len(kept) else ""
    section.browse = Browse(["video", "text", "vibe", "raters (mean, ratings)", *names, "evidence"], rows,
                            sorted(frame["attribute"].unique()), filters, note)
    return section
