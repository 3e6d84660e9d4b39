"""Evidence teacher -> silver -> student on a small real workspace (400 bundled movies), through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, run_cli, write_workspace
from vibeset.annotate.evidence import heldout_scores
from vibeset.annotate.silver import load_silver, sample_catalog, stratified_sample
from vibeset.artifacts import artifacts_of
from vibeset.distill import mlp
from vibeset.distill.linear import fit_linear, folds_of
from vibeset.distill.student import Student, calibrate, load_student
from vibeset.errors import DataError
from vibeset.golden import workspace_golden
from vibeset.runs import uses_of_test_split
from vibeset.shards import read_embeddings
from vibeset.workspace import load_workspace

MOVIES = 400


@pytest.fixture(scope="module")
def small_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled data cut to 400 movies with overviews, 300 of them judged in the survey."""
    root = tmp_path_factory.mktemp("distill-ws")
    movies = pd.read_csv(DATA / "movies.csv", dtype=str)
    movies = movies[movies["overview"].fillna("").str.len() > 0]
    judged = set(pd.read_csv(DATA / "survey.csv", dtype=str)["movieId"])
    keep = pd.concat([movies[movies["movieId"].isin(judged)].head(300), movies[~movies["movieId"].isin(judged)].head(MOVIES - 300)])
    keep.to_csv(root / "movies.csv", index=False)
    return write_workspace(root, root / "out", catalog=root / "movies.csv")


@pytest.fixture(scope="module")
def distilled(small_workspace: Path) -> dict:
    before = run_cli("run", "--only", "golden", "--only", "embed", "--only", "cf", "--only", "teacher", workspace=small_workspace)
    assert before.returncode == 0, before.stderr
    silver = run_cli("silver", "--sample", "250", "--json", workspace=small_workspace)
    assert silver.returncode == 0, silver.stderr
    ws = load_workspace(small_workspace)
    uses = uses_of_test_split(ws)
    result = run_cli("distill", workspace=small_workspace)
    assert result.returncode == 0, result.stderr
    return {"silver": json.loads(silver.stdout), "stdout": result.stdout, "ws": ws, "test_uses": uses_of_test_split(ws) - uses,
            "report": artifacts_of(ws).get("student").read_json("report.json")}


def test_silver_reads_the_teachers_labels_excludes_golden_test_and_is_stable(distilled: dict) -> None:
    ws = distilled["ws"]
    test_videos = set(workspace_golden(ws).split("test").pairs["video_id"])
    sample = sample_catalog(ws, 250, exclude=test_videos)
    assert len(sample.video_ids) == 250 and not set(sample.video_ids) & test_videos
    artifact = artifacts_of(ws).get("silver", "evidence")
    frame, meta = load_silver(artifact)
    assert frame["video_id"].nunique() == 250 and set(frame["video_id"]) == set(sample.video_ids)
    assert meta["copied_videos"] == 250 and meta["annotated_videos"] == 0  # read from the teacher, not run again
    assert frame["score"].between(0, 1).all() and frame["score"].nunique() > 100  # confidences kept, not just labels
    teacher = artifacts_of(ws).annotations("evidence").manifest()
    assert artifact.manifest().inputs["teacher"] == teacher.content_id
    before = artifact.manifest().content_id
    again = run_cli("silver", "--sample", "250", "--json", workspace=ws.root)
    assert again.returncode == 0 and artifact.manifest().content_id == before  # same inputs, same Silver Set


def test_stratified_sample_keeps_every_stratum() -> None:
    strata = ["a"] * 90 + ["b"] * 9 + ["c"]
    rows = stratified_sample(strata, 20, seed=1)
    chosen = pd.Series(strata).iloc[rows].value_counts()
    assert len(rows) == 20 and set(chosen.index) == {"a", "b", "c"} and chosen["a"] > chosen["b"]


def test_distill_decides_on_silver_and_dev_only_and_keeps_the_teacher(distilled: dict) -> None:
    report, stdout = distilled["report"], distilled["stdout"]
    assert distilled["test_uses"] == 0 and "annotators" not in report  # no look at golden test by default
    assert all(word in stdout for word in ("feature groups", "catalog calibration", "golden dev AUC"))
    assert report["dev"]["accepted"] and report["dev"]["auc_loss"] <= 0.02  # the student keeps its teacher
    assert report["agreement"]["spearman_vs_teacher_scores"] > 0.95  # a linear teacher, learned back (250 videos)
    chosen = [row for row in report["ablation"] if row["chosen"]]
    assert len(chosen) == 1 and chosen[0]["heldout_mse"] == min(row["heldout_mse"] for row in report["ablation"])
    student = Student(artifacts_of(distilled["ws"]).get("student").path)
    assert student.lineage["teacher"] == "evidence" and "text" in student.lineage["feature_groups"]
    assert student.lineage["prompt_version"]  # the teacher's, carried into every label
    assert student.lineage["onnx_parity_max_abs"] < 1e-3


def test_calibration_json_per_vibe_within_the_base_rate_band(distilled: dict) -> None:
    ws = distilled["ws"]
    calibration = artifacts_of(ws).get("student").read_json("calibration.json")
    assert calibration["method"] and set(calibration["attributes"]) == set(ws.taxonomy.names)
    for row in calibration["attributes"].values():
        assert {"golden_prevalence", "base_rate", "share_labelled", "threshold"} <= set(row)
        assert 0.5 * row["base_rate"] - 1e-9 <= row["share_labelled"] <= 2 * row["base_rate"] + 1e-9


def test_thresholds_come_from_golden_dev_and_the_catalog(distilled: dict) -> None:
    ws = distilled["ws"]
    student = load_student(ws)
    ids, text, tags = read_embeddings(artifacts_of(ws).get("shards"))
    logits = student.logits(student.space.blocks(ids, text, tags))
    scores = student.calibration.apply(logits)
    golden = workspace_golden(ws)

    def thresholds(held: pd.DataFrame, part) -> np.ndarray:
        return calibrate(logits, ids, part, logits, student.attributes, student.calibration.objective, heldout=held)[0].thresholds

    dev = heldout_scores(artifacts_of(ws).get("evidence"))  # the teacher's out-of-fold dev scores
    np.testing.assert_allclose(thresholds(dev, golden.split("dev")), student.calibration.thresholds, atol=1e-6)
    test = golden.split("test").pairs
    test = test.assign(score=scores[[ids.index(v) for v in test["video_id"]], [student.attributes.index(a) for a in test["attribute"]]])
    assert not np.allclose(thresholds(test, golden.split("test")), student.calibration.thresholds)


def test_distill_refuses_a_student_that_loses_to_its_teacher(distilled: dict) -> None:
    ws = distilled["ws"]
    before = artifacts_of(ws).get("student").manifest().content_id
    result = run_cli("distill", "--groups", "text", "--max-auc-loss", "0.0", workspace=ws.root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused" in result.stderr and "previous student stays" in result.stderr and "Traceback" not in result.stderr
    assert artifacts_of(ws).get("student").manifest().content_id == before


def test_router_reads_golden_test_only_when_asked_and_records_it(distilled: dict) -> None:
    ws = distilled["ws"]
    uses = uses_of_test_split(ws)
    result = run_cli("distill", "--router", "--bootstrap", "20", "--json", workspace=ws.root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert uses_of_test_split(ws) == uses + 1
    assert {"crowd", "teacher", "student"} <= set(report["annotators"]) and "head_to_head" in report["annotators"]["student"]
    router = report["router"]
    assert router[0]["teacher_calls_share"] == 0.0 and router[-1]["teacher_calls_share"] == 1.0


def test_evaluate_scores_student_and_evidence_beside_each_other(distilled: dict) -> None:
    ws = distilled["ws"]
    result = run_cli("evaluate", "--annotator", "evidence", "--annotator", "student", "--split", "test",
                     "--bootstrap", "10", "--json", workspace=ws.root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"evidence", "student"} <= set(report["annotators"])
    assert abs(report["annotators"]["evidence"]["micro"]["roc_auc"] - report["annotators"]["student"]["micro"]["roc_auc"]) < 0.01
    videos = list(ws.catalog)[:5]
    frame = load_student(ws).annotate(videos, ws.taxonomy)
    assert len(frame) == 5 * len(ws.taxonomy) and set(frame["source"]) == {"student"}
    assert frame["model"].iloc[0].startswith("student-")


def test_linear_student_learns_a_linear_teacher_back_and_cross_fits() -> None:
    rng = np.random.default_rng(0)
    blocks = {"text": rng.normal(size=(600, 40)), "tags": (rng.random((600, 6)) < 0.3).astype(float)}
    weights = rng.normal(size=(46, 3))
    target = np.hstack([blocks["text"], blocks["tags"]]) @ weights + 0.5
    ids = [f"v{i}" for i in range(600)]
    fit = fit_linear(blocks, target, folds_of(ids))
    assert fit.alpha == min(row["alpha"] for row in fit.cv)  # a noiseless linear target wants the least shrinkage
    assert np.corrcoef(fit.logits(blocks).ravel(), target.ravel())[0, 1] > 0.999
    assert np.corrcoef(fit.oof.ravel(), target.ravel())[0, 1] > 0.99  # held-out rows too
    wide = {"text": rng.normal(size=(30, 200))}  # more columns than rows: the dual path
    assert fit_linear(wide, wide["text"][:, :2] * 3.0, folds_of(ids[:30])).logits(wide).shape == (30, 2)
    with pytest.raises(DataError, match="two folds"):
        fit_linear(wide, wide["text"][:, :2], np.zeros(30, int))


def test_onnx_matches_torch_and_needs_no_torch(tmp_path: Path) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    blocks = {"text": rng.normal(size=(300, 16)).astype(np.float32), "tags": (rng.random((300, 5)) < 0.3).astype(np.float32)}
    soft = rng.random((300, 4)).astype(np.float32)
    net, result = mlp.train(blocks, soft, np.ones_like(soft, bool), rng.random(300) < 0.2, mlp.TrainConfig(max_epochs=5, hidden=32))
    path = mlp.export_onnx(net, {g: b.shape[1] for g, b in blocks.items()}, tmp_path / "m.onnx")
    onnx_out = ort.InferenceSession(str(path)).run(["logits"], blocks)[0]
    np.testing.assert_allclose(onnx_out, mlp.torch_logits(net, blocks), atol=1e-5)
    assert result.epochs == 5 and 1 <= result.best_epoch <= 5
    fit = fit_linear({g: b.astype(float) for g, b in blocks.items()}, soft @ np.ones((4, 2)), folds_of([str(i) for i in range(300)]))
    linear = mlp.linear_module(list(fit.groups), fit.mean, fit.std, fit.weight, fit.bias)
    path = mlp.export_onnx(linear, {g: b.shape[1] for g, b in blocks.items()}, tmp_path / "linear.onnx")
    np.testing.assert_allclose(ort.InferenceSession(str(path)).run(["logits"], blocks)[0], fit.logits(blocks), atol=1e-4)
    with pytest.raises(DataError, match="held-out"):
        mlp.train(blocks, soft, np.ones_like(soft, bool), np.zeros(300, bool), mlp.TrainConfig(max_epochs=1))


def test_serving_does_not_import_torch(distilled: dict) -> None:
    code = (
        "import sys; from vibeset.workspace import load_workspace; from vibeset.distill.student import load_student;"
        "ws = load_workspace(); s = load_student(ws); s.annotate(list(ws.catalog)[:3], ws.taxonomy);"
        "from vibeset.scale.label import ShardLabeller; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "VIBESET_WORKSPACE": str(distilled["ws"].root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_review_does_not_reset_the_test_split_count(distilled: dict) -> None:
    from vibeset.reviews import Review, append_review
    from vibeset.runs import golden_split

    ws = distilled["ws"]
    golden_split(ws, "test", final=True, purpose="test: one look")
    before, version = uses_of_test_split(ws), workspace_golden(ws).version
    pair = workspace_golden(ws).pairs.iloc[0]
    append_review(ws, Review("reviewer-1", pair["video_id"], pair["attribute"], 5.0))
    assert workspace_golden(ws).version != version and uses_of_test_split(ws) == before >= 1
