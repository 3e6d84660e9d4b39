"""The paired comparison on a hand-checked example, and the registry round trip."""

from __future__ import annotations

import pandas as pd
import pytest

from vibeset.golden import GoldenSet
from vibeset.iterate.compare import compare_versions, mcnemar_exact, paired_comparison

# 8 videos, one attribute. Humans: the first four yes, the last four no.
TRUTH = [True, True, True, True, False, False, False, False]
A = [True, False, False, False, True, False, False, False]  # tp 1, fp 1, fn 3 -> F1 = 2/6
B = [True, True, True, False, False, False, True, False]  # tp 3, fp 1, fn 1 -> F1 = 6/8
# correct: A right on v1 v6 v7 v8; B right on v1 v2 v3 v5 v6 v8
# only A right: v7 (1); only B right: v2 v3 v5 (3); McNemar exact p = 2 * (C(4,0) + C(4,1)) / 2^4 = 10/16


def _frame(pred_a=A, pred_b=B) -> pd.DataFrame:
    return pd.DataFrame(
        {"video_id": [f"v{i}" for i in range(1, 9)], "attribute": "sad", "y_true": TRUTH, "pred_a": pred_a, "pred_b": pred_b}
    )


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(1, 3) == pytest.approx(10 / 16)
    assert mcnemar_exact(1, 5) == pytest.approx(2 * (1 + 6) / 64)  # 0.21875
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(4, 4) == 1.0  # capped at 1


def test_paired_comparison_hand_checked_example():
    result = paired_comparison(_frame(), n_boot=2000, seed=1)
    block = result["per_attribute"]["sad"]
    assert block["f1_a"] == pytest.approx(1 / 3)
    assert block["f1_b"] == pytest.approx(0.75)
    assert block["delta"] == pytest.approx(0.75 - 1 / 3)
    assert (block["only_a_right"], block["only_b_right"]) == (1, 3)
    assert block["p_mcnemar"] == pytest.approx(0.625)
    low, high = block["delta_ci"]
    assert low < block["delta"] < high
    assert 0.0 <= block["p_bootstrap"] <= 1.0
    # one attribute: macro equals the attribute
    assert result["macro"]["delta"] == pytest.approx(block["delta"])


def test_identical_versions_have_no_difference():
    result = paired_comparison(_frame(pred_b=A), n_boot=200)
    block = result["macro"]
    assert block["delta"] == 0.0 and block["p_bootstrap"] == 1.0 and block["p_mcnemar"] == 1.0
    assert block["delta_ci"] == [0.0, 0.0]


def test_compare_versions_lists_flips_and_uses_shared_pairs_only():
    frame = _frame()
    golden = GoldenSet(
        pairs=pd.DataFrame({"video_id": frame["video_id"], "attribute": "sad", "n_raters": 1,
                            "mean_rating": [4.0] * 4 + [2.0] * 4, "label": TRUTH, "split": "dev"}),
        judgements=pd.DataFrame(columns=["rater", "video_id", "attribute", "rating"]),
        threshold=3.5, rater_positive=4.0,
    )

    def annotations(labels, drop=()):
        rows = pd.DataFrame({"video_id": frame["video_id"], "attribute": "sad", "label": labels, "score": 0.5})
        return rows[~rows["video_id"].isin(drop)]

    result = compare_versions(golden, annotations(A), annotations(B), n_boot=200)
    flips = {(f["video_id"], f["change"]) for f in result["flips"]}
    assert flips == {("v2", "fixed"), ("v3", "fixed"), ("v5", "fixed"), ("v7", "broke")}
    assert result["flip_counts"] == {"fixed": 3, "broke": 1}
    assert result["metrics_b"]["macro"]["f1"] == pytest.approx(0.75)
    # a pair only one side labelled is left out of both
    partial = compare_versions(golden, annotations(A), annotations(B, drop=("v7",)), n_boot=100)
    assert partial["coverage"]["pairs"] == 7
    assert partial["per_attribute"]["sad"]["only_a_right"] == 0
