"""Two versions on the same golden items: per-attribute F1 deltas with paired tests, and the flips.

Both versions are scored only on the pairs both labelled, so a difference is the versions', not
the items'. Two paired tests, since each misses something the other sees:

- paired bootstrap by video: resample videos once per replicate and score both versions on the
  same replicate; gives a CI and a two-sided p-value for the F1 delta itself;
- McNemar's exact test on correctness: among pairs where exactly one version is right, is
  "only B right" more common than "only A right"? (binomial, p = 1/2, two-sided).

``flips`` lists every pair whose label changed, marked ``fixed`` (B now agrees with humans) or
``broke``, so a reviewer sees exactly what a definition change does before re-annotating.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.stats import binom

from ..catalog import Video
from ..errors import DataError
from ..golden import GoldenSet
from ..metrics import bootstrap_weights, evaluate_pairs, percentile_ci


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(only_a, only_b), n, 0.5)))


def _f1(counts: np.ndarray) -> np.ndarray:
    """F1 from [..., (tp, fp, fn)] counts; 0 where undefined."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denom = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2 * tp / denom, 0.0)


def _bootstrap_p(replicas: np.ndarray) -> float:
    """Two-sided p-value that the delta is 0, from its bootstrap distribution."""
    if replicas.size == 0:
        return 1.0
    return float(min(1.0, 2.0 * min(np.mean(replicas <= 0), np.mean(replicas >= 0))))


def _paired(frame: pd.DataFrame) -> pd.DataFrame:
    needed = {"video_id", "attribute", "y_true", "pred_a", "pred_b"}
    if missing := needed - set(frame.columns):
        raise DataError(f"paired predictions lack columns {sorted(missing)}")
    if frame.empty:
        raise DataError("the two versions share no labelled golden pair; nothing to compare")
    return frame


def paired_comparison(frame: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Deltas (B - A) of F1 per attribute, macro and micro, with paired bootstrap and McNemar.

    ``frame``: one row per (video_id, attribute) with y_true, pred_a, pred_b (booleans).
    """
    frame = _paired(frame)
    videos, video_index = np.unique(frame["video_id"].to_numpy(), return_inverse=True)
    names, attr_index = np.unique(frame["attribute"].to_numpy(), return_inverse=True)
    truth = frame["y_true"].to_numpy(dtype=bool)
    counts = {}
    for side in ("a", "b"):
        pred = frame[f"pred_{side}"].to_numpy(dtype=bool)
        cells = np.stack([truth & pred, ~truth & pred, truth & ~pred], axis=1).astype(float)
        per_video = np.zeros((len(videos), len(names), 3))
        np.add.at(per_video, (video_index, attr_index), cells)
        counts[side] = per_video
    right_a = frame["pred_a"].to_numpy(dtype=bool) == truth
    right_b = frame["pred_b"].to_numpy(dtype=bool) == truth

    weights = bootstrap_weights(len(videos), n_boot, seed)
    boot = {side: np.einsum("bv,vak->bak", weights, c) for side, c in counts.items()}  # (B, A, 3)
    point = {side: c.sum(axis=0) for side, c in counts.items()}  # (A, 3)

    def block(f1_a: float, f1_b: float, replicas: np.ndarray, rows: np.ndarray, n: int) -> dict[str, Any]:
        only_a, only_b = int(np.sum(right_a[rows] & ~right_b[rows])), int(np.sum(~right_a[rows] & right_b[rows]))
        finite = replicas[np.isfinite(replicas)]
        return {
            "n": n,
            "f1_a": float(f1_a),
            "f1_b": float(f1_b),
            "delta": float(f1_b - f1_a),
            "delta_ci": percentile_ci(finite) if finite.size else None,
            "p_bootstrap": _bootstrap_p(finite),
            "only_a_right": only_a,
            "only_b_right": only_b,
            "p_mcnemar": mcnemar_exact(only_a, only_b),
        }

    f1_a, f1_b = _f1(point["a"]), _f1(point["b"])
    boot_a, boot_b = _f1(boot["a"]), _f1(boot["b"])  # (B, A)
    per_attribute = {
        str(name): block(f1_a[i], f1_b[i], boot_b[:, i] - boot_a[:, i], attr_index == i, int(np.sum(attr_index == i)))
        for i, name in enumerate(names)
    }
    every = np.ones(len(frame), dtype=bool)
    macro = block(f1_a.mean(), f1_b.mean(), boot_b.mean(axis=1) - boot_a.mean(axis=1), every, len(frame))
    micro = block(
        _f1(point["a"].sum(axis=0)), _f1(point["b"].sum(axis=0)),
        _f1(boot["b"].sum(axis=1)) - _f1(boot["a"].sum(axis=1)), every, len(frame),
    )
    return {"macro": macro, "micro": micro, "per_attribute": per_attribute, "n_boot": n_boot}


def flips(frame: pd.DataFrame, videos: Mapping[str, Video] | None = None) -> list[dict[str, Any]]:
    """Every pair whose label differs between A and B, marked fixed / broke, by attribute then video."""
    changed = frame[frame["pred_a"].astype(bool) != frame["pred_b"].astype(bool)]
    out = []
    for row in changed.sort_values(["attribute", "video_id"]).itertuples(index=False):
        video = (videos or {}).get(row.video_id)
        out.append(
            {
                "video_id": row.video_id,
                "title": video.title if video else "",
                "attribute": row.attribute,
                "label_a": bool(row.pred_a),
                "label_b": bool(row.pred_b),
                "human_label": bool(row.y_true),
                "change": "fixed" if bool(row.pred_b) == bool(row.y_true) else "broke",
            }
        )
    return out


def compare_versions(
    golden: GoldenSet,
    a: pd.DataFrame,
    b: pd.DataFrame,
    videos: Mapping[str, Video] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare two annotation tables on the golden pairs both labelled.

    Beside the paired deltas, each side's own metrics with CIs (``evaluate_pairs``) on exactly
    those pairs, and the flips.
    """
    reference = golden.pairs[["video_id", "attribute", "label"]].rename(columns={"label": "y_true"})
    frame = reference.merge(
        a[["video_id", "attribute", "label", "score"]].rename(columns={"label": "pred_a", "score": "score_a"}),
        on=["video_id", "attribute"],
    ).merge(
        b[["video_id", "attribute", "label", "score"]].rename(columns={"label": "pred_b", "score": "score_b"}),
        on=["video_id", "attribute"],
    )
    result = paired_comparison(frame, n_boot=n_boot, seed=seed)
    for side in ("a", "b"):
        scored = frame.rename(columns={f"pred_{side}": "y_pred", f"score_{side}": "score"})[
            ["video_id", "attribute", "y_true", "y_pred", "score"]
        ]
        if scored["score"].isna().any():
            scored = scored.drop(columns="score")
        metrics = evaluate_pairs(scored, n_boot=min(n_boot, 500), seed=seed)
        result[f"metrics_{side}"] = {"micro": metrics["micro"], "macro": metrics["macro"]}
    result["coverage"] = {"pairs": int(len(frame)), "golden_pairs": int(len(reference))}
    result["flips"] = flips(frame, videos)
    result["flip_counts"] = {
        "fixed": sum(f["change"] == "fixed" for f in result["flips"]),
        "broke": sum(f["change"] == "broke" for f in result["flips"]),
    }
    return result
