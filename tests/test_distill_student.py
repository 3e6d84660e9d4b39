"""Silver -> student -> evaluate on a small real workspace (400 bundled movies), through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DATA, run_cli, write_workspace
from vibeset.annotate.silver import load_silver, sample_catalog, stratified_sample
from vibeset.artifacts import artifacts_of
from vibeset.distill import mlp
from vibeset.distill.student import Student, calibrate, load_student
from vibeset.errors import DataError
from vibeset.golden import workspace_golden
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
    result = run_cli("distill", "--router", "--bootstrap", "20", workspace=small_workspace)
    assert result.returncode == 0, result.stderr
    ws = load_workspace(small_workspace)
    return {"silver": json.loads(silver.stdout), "stdout": result.stdout, "ws": ws,
            "report": artifacts_of(ws).get("student").read_json("report.json")}


def test_silver_reads_the_teachers_labels_excludes_golden_test_and_is_stable(distilled: dict) -> None:
    ws = distilled["ws"]
    sample = sample_catalog(ws, 250, exclude=set(workspace_golden(ws).split("test").pairs["video_id"]))
    test_videos = set(workspace_golden(ws).split("test").pairs["video_id"])
    assert len(sample.video_ids) == 250 and not set(sample.video_ids) & test_videos
    artifact = artifacts_of(ws).get("silver", "zero-shot")
    frame, meta = load_silver(artifact)
    assert frame["video_id"].nunique() == 250 and set(frame["video_id"]) == set(sample.video_ids)
    assert meta["copied_videos"] == 250 and meta["annotated_videos"] == 0  # read from the teacher, not run again
    assert frame["score"].between(0, 1).all() and frame["score"].nunique() > 100  # confidences kept, not just labels
    teacher = artifacts_of(ws).annotations("zero-shot").manifest()
    assert artifact.manifest().inputs["teacher"] == teacher.content_id
    before = artifact.manifest().content_id
    again = run_cli("silver", "--sample", "250", "--json", workspace=ws.root)
    assert again.returncode == 0 and artifact.manifest().content_id == before  # same inputs, same Silver Set


def test_stratified_sample_keeps_every_stratum() -> None:
    strata = ["a"] * 90 + ["b"] * 9 + ["c"]
    rows = stratified_sample(strata, 20, seed=1)
    chosen = pd.Series(strata).iloc[rows].value_counts()
    assert len(rows) == 20 and set(chosen.index) == {"a", "b", "c"} and chosen["a"] > chosen["b"]


def test_distill_prints_teacher_student_crowd_and_saves_lineage(distilled: dict) -> None:
    assert all(name in distilled["stdout"] for name in ("teacher", "student", "crowd", "router"))
    report = distilled["report"]
    assert set(report["annotators"]) == {"crowd", "teacher", "student"}
    assert "head_to_head" in report["annotators"]["student"]
    assert 0.5 < report["agreement"]["label_agreement"] <= 1.0
    router = report["router"]
    assert router[0]["teacher_calls_share"] == 0.0 and router[-1]["teacher_calls_share"] == 1.0
    student = Student(artifacts_of(distilled["ws"]).get("student").path)
    assert student.lineage["teacher"] == "zero-shot" and student.lineage["feature_groups"] == ["text", "tags", "cf"]
    assert student.lineage["prompt_version"]  # the teacher's, carried into every label
    assert student.lineage["onnx_parity_max_abs"] < 1e-4


def test_evaluate_scores_student_beside_teacher(distilled: dict) -> None:
    ws = distilled["ws"]
    result = run_cli("evaluate", "--annotator", "zero-shot", "--annotator", "student", "--split", "test",
                     "--bootstrap", "10", "--json", workspace=ws.root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"zero-shot", "student"} <= set(report["annotators"])
    videos = list(ws.catalog)[:5]
    frame = load_student(ws).annotate(videos, ws.taxonomy)
    assert len(frame) == 5 * len(ws.taxonomy) and set(frame["source"]) == {"student"}
    assert frame["model"].iloc[0].startswith("student-")


def test_thresholds_come_from_golden_dev_only(distilled: dict) -> None:
    ws = distilled["ws"]
    student = load_student(ws)
    golden = workspace_golden(ws)
    objective = student.calibration.objective

    def thresholds(split: str) -> np.ndarray:
        part = golden.split(split)
        ids = sorted(set(part.pairs["video_id"]))
        logits = student.logits(student.video_blocks([ws.catalog.get(v) for v in ids]))
        return calibrate(logits, student.attributes, part, ids, objective).thresholds

    np.testing.assert_allclose(thresholds("dev"), student.calibration.thresholds, atol=1e-6)
    assert not np.allclose(thresholds("test"), student.calibration.thresholds)


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
    with pytest.raises(DataError, match="held-out"):
        mlp.train(blocks, soft, np.ones_like(soft, bool), np.zeros(300, bool), mlp.TrainConfig(max_epochs=1))


def test_serving_does_not_import_torch(distilled: dict) -> None:
    code = (
        "import sys; from vibeset.workspace import load_workspace; from vibeset.distill.student import load_student;"
        "ws = load_workspace(); s = load_student(ws); s.annotate(list(ws.catalog)[:3], ws.taxonomy);"
        "from vibeset.scale.label import ShardLabeller; print('torch' in sys.modules)"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "VIBESET_WORKSPACE": str(distilled["ws"].root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
