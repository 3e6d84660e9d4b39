"""Bulk labelling: local and Ray engines agree, and a killed ``vibeset label`` resumes without loss or duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DATA, REPO, VIBESET, write_workspace
from vibeset.annotation import read_annotations
from vibeset.artifacts import KINDS, Artifact, Stamp
from vibeset.distill import mlp
from vibeset.distill.features import FeatureSpace
from vibeset.distill.student import Calibration, save_student
from vibeset.errors import ConfigError, DataError
from vibeset.scale import label as labelling
from vibeset.shards import embedding_array


def label(student: Path, videos: str, out: Path, run_id: str = "r1", **options) -> dict:
    """Label into an annotations artifact at ``out`` (what ``vibeset label --out`` does)."""
    return labelling.label(student, videos, Artifact(KINDS["annotations"], out), Stamp(run_id), **options)

ATTRIBUTES = ["cosy", "dark", "tense"]
TAGS = ["Comedy", "Drama", "Horror"]


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real student (trained for a few epochs on random data) over text, tags and CF."""
    root = tmp_path_factory.mktemp("student")
    rng = np.random.default_rng(0)
    n = 400
    cf_ids = [str(i) for i in range(0, 200)]
    space = FeatureSpace(groups=("text", "tags", "cf"), text_dim=384, encoder="all-MiniLM-L6-v2-int8",
                         tag_vocabulary=TAGS, cf_ids=pd.Index(cf_ids), cf_factors=rng.normal(size=(200, 8)).astype(np.float32))
    text = rng.normal(size=(n, 384)).astype(np.float32)
    blocks = space.blocks([str(i) for i in range(n)], text / np.linalg.norm(text, axis=1, keepdims=True),
                          [[TAGS[i % 3]] for i in range(n)])
    soft = rng.random((n, len(ATTRIBUTES))).astype(np.float32)
    net, _ = mlp.train(blocks, soft, np.ones_like(soft, bool), rng.random(n) < 0.2, mlp.TrainConfig(max_epochs=3, hidden=32))
    onnx_file = mlp.export_onnx(net, space.widths(), root / "tmp.onnx")
    calibration = Calibration(np.ones(3), np.zeros(3), np.full(3, 0.5), "mcc", [True] * 3)
    save_student(root / "student", onnx_file=onnx_file, space=space, attributes=ATTRIBUTES, calibration=calibration,
                 taxonomy_version="t", lineage={"teacher": "test", "prompt_version": "p1"}, metrics={})
    return root / "student"


def stored_shards(directory: Path, shards: int, rows: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for s in range(shards):
        vectors = rng.normal(size=(rows, 384)).astype(np.float32)
        ids = [str(s * rows + i) for i in range(rows)]
        pq.write_table(pa.table({
            "video_id": ids,
            "tags": pa.array([[TAGS[i % 3], "Unknown"] if i % 4 else [] for i in range(rows)], pa.list_(pa.string())),
            "embedding": embedding_array(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)),
        }), directory / f"stored-{s}.parquet")
    return directory


def text_shards(directory: Path, shards: int, rows: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    movies = pd.read_csv(DATA / "movies.csv", dtype=str).dropna(subset=["overview"]).head(shards * rows)
    for s in range(shards):
        part = movies.iloc[s * rows : (s + 1) * rows]
        pq.write_table(pa.table({
            "video_id": [f"movie-{v}" for v in part["movieId"]],
            "title": list(part["title"]),
            "tags": list(part["genres"]),  # '|'-separated strings are accepted too
            "description": list(part["overview"]),
        }), directory / f"text-{s}.parquet")
    return directory


def _sorted(directory: Path) -> pd.DataFrame:
    return read_annotations(directory).sort_values(["video_id", "attribute"]).reset_index(drop=True)


def test_local_and_ray_engines_give_identical_labels(student: Path, tmp_path: Path) -> None:
    stored_shards(tmp_path / "in", shards=3, rows=300)
    text_shards(tmp_path / "in", shards=1, rows=24)
    local = label(student, str(tmp_path / "in" / "*.parquet"), tmp_path / "local", workers=2, batch_rows=128)
    remote = label(student, str(tmp_path / "in" / "*.parquet"), tmp_path / "ray", engine="ray", workers=2,
                   batch_rows=128, wave=2)
    import ray

    assert not ray.is_initialized()  # the one Ray session was shut down
    assert local["videos"] == remote["videos"] == 3 * 300 + 24
    a, b = _sorted(tmp_path / "local"), _sorted(tmp_path / "ray")
    assert len(a) == 924 * len(ATTRIBUTES) and not a.duplicated(["video_id", "attribute"]).any()
    pd.testing.assert_frame_equal(a.drop(columns="score"), b.drop(columns="score"))
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "ray").iterdir() if not p.name.startswith("_")) == sorted(
        p.name for p in (tmp_path / "local").iterdir() if not p.name.startswith("_"))
    assert a["label"].any() and not a["label"].all()
    assert set(a["source"]) == {"student"} and set(a["run_id"]) == {"r1"} and set(a["prompt_version"]) == {"p1"}


def test_label_resumes_after_kill_without_loss_or_duplicates(student: Path, tmp_path: Path) -> None:
    text_shards(tmp_path / "in", shards=8, rows=40)
    workspace = write_workspace(tmp_path / "ws", tmp_path / "art")
    command = [*VIBESET, "label", "--model", str(student), "--videos", str(tmp_path / "in" / "*.parquet"),
               "--out", str(tmp_path / "out"), "--workers", "1", "--batch-rows", "8", "--workspace", str(workspace), "--json"]
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "out").glob("text-*.parquet")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = sorted((tmp_path / "out").glob("text-*.parquet"))
    assert 1 <= len(done) < 8, "the kill should land mid-run"
    before = {p.name: p.stat().st_mtime_ns for p in done}
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["shards_skipped"] == len(done) and summary["shards_labelled"] == 8 - len(done)
    assert all(p.stat().st_mtime_ns == before[p.name] for p in done)  # finished shards untouched
    frame = read_annotations(tmp_path / "out")
    assert len(frame) == 8 * 40 * len(ATTRIBUTES) and not frame.duplicated(["video_id", "attribute"]).any()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_label_explains_bad_input(student: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"video_id": ["1"], "embedding": embedding_array(np.ones((1, 384), np.float32))}),
                   tmp_path / "in" / "x.parquet")
    with pytest.raises(DataError, match="tags"):
        label(student, str(tmp_path / "in" / "*.parquet"), tmp_path / "out", workers=1)
    with pytest.raises(DataError, match="no Parquet shards"):
        label(student, str(tmp_path / "nothing" / "*.parquet"), tmp_path / "out")


def test_an_out_dir_belongs_to_one_student(student: Path, tmp_path: Path) -> None:
    import shutil

    shards = stored_shards(tmp_path / "in", shards=2, rows=50)
    out = tmp_path / "out"
    label(student, str(shards / "*.parquet"), out)
    other = tmp_path / "other"
    shutil.copytree(student, other)
    state = json.loads((other / "student.json").read_text())
    (other / "student.json").write_text(json.dumps({**state, "version": "another"}))
    with pytest.raises(ConfigError, match="holds labels by student .*, not another: pass --replace"):
        label(other, str(shards / "*.parquet"), out)  # would otherwise skip both shards as done
    summary = label(other, str(shards / "*.parquet"), out, replace=True)
    assert summary["shards_labelled"] == 2 and summary["shards_skipped"] == 0
    labels = read_annotations(out)
    assert len(labels) == 100 * len(ATTRIBUTES) and set(labels["model"]) == {"student-another"}
    assert not labels.duplicated(["video_id", "attribute"]).any()
