import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, matthews_corrcoef, precision_score, recall_score, roc_auc_score

from vibeset.errors import DataError
from vibeset.metrics import binary_metrics, evaluate_pairs, weighted_auc


def random_pairs(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"video_id": rng.integers(0, 900, n).astype(str), "attribute": rng.choice(list("abcdef"), n), "y_true": rng.random(n) < 0.35}
    )
    frame["score"] = np.round(frame["y_true"] * 0.3 + rng.random(n), 2)  # ties on purpose
    frame["y_pred"] = frame["score"] > 0.8
    return frame


def test_binary_metrics_agree_with_sklearn():
    f = random_pairs()
    got = binary_metrics(f.y_true, f.y_pred)
    assert got["precision"] == pytest.approx(precision_score(f.y_true, f.y_pred))
    assert got["recall"] == pytest.approx(recall_score(f.y_true, f.y_pred))
    assert got["f1"] == pytest.approx(f1_score(f.y_true, f.y_pred))
    assert got["mcc"] == pytest.approx(matthews_corrcoef(f.y_true, f.y_pred))


def test_weighted_auc_agrees_with_sklearn_including_ties():
    f = random_pairs()
    weights = np.random.default_rng(1).random((3, len(f)))
    got = weighted_auc(f.y_true.to_numpy(), f.score.to_numpy(), weights)
    want = [roc_auc_score(f.y_true, f.score, sample_weight=w) for w in weights]
    assert got == pytest.approx(want)


def test_evaluate_pairs_micro_macro_and_cis():
    f = random_pairs()
    result = evaluate_pairs(f, n_boot=300)
    micro, macro = result["micro"], result["macro"]
    assert micro["f1"] == pytest.approx(f1_score(f.y_true, f.y_pred))
    assert micro["roc_auc"] == pytest.approx(roc_auc_score(f.y_true, f.score))
    assert macro["f1"] == pytest.approx(np.mean([f1_score(g.y_true, g.y_pred) for _, g in f.groupby("attribute")]))
    for block in (micro, macro, result["per_attribute"]["a"]):
        for key in ("f1", "mcc", "roc_auc"):
            low, high = block["ci"][key]
            assert low <= block[key] <= high and high - low < 0.3
    assert micro["always_positive_f1"] == pytest.approx(2 * f.y_true.mean() / (1 + f.y_true.mean()))


def test_empty_or_misshapen_input_is_an_error():
    with pytest.raises(DataError, match="no scored pairs"):
        evaluate_pairs(random_pairs().iloc[:0])
    with pytest.raises(DataError, match="lack columns"):
        evaluate_pairs(random_pairs().drop(columns="y_pred"))
