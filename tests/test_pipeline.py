"""``vibeset run`` on a small real workspace: every stage recorded, nothing re-run without a reason,
lineage from a served recommendation back to the golden set, and a promoted taxonomy reaching bulk labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import DATA, run_cli, write_workspace
from vibeset.annotate.versions import save_taxonomy
from vibeset.annotation import read_annotations
from vibeset.artifacts import artifacts_of
from vibeset.iterate import promote
from vibeset.pipeline import NAMES
from vibeset.runs import get_run, list_runs
from vibeset.serve import create_app
from vibeset.workspace import load_workspace

PIPELINE = "\n[pipeline]\nsilver_sample = 200\n"


@pytest.fixture(scope="module")
def pipeline_ws(tmp_path_factory: pytest.TempPathFactory, shared_artifacts: Path) -> Path:
    """The bundled data cut to 400 movies (300 judged), its embeddings cache shared with the session."""
    root = tmp_path_factory.mktemp("pipeline")
    movies = pd.read_csv(DATA / "movies.csv", dtype=str)
    movies = movies[movies["overview"].fillna("").str.len() > 0]
    judged = set(pd.read_csv(DATA / "survey.csv", dtype=str)["movieId"])
    keep = pd.concat([movies[movies["movieId"].isin(judged)].head(300), movies[~movies["movieId"].isin(judged)].head(100)])
    keep.to_csv(root / "movies.csv", index=False)
    (root / "out").mkdir()
    (shared_artifacts / "embeddings").mkdir(parents=True, exist_ok=True)
    (root / "out" / "embeddings").symlink_to(shared_artifacts / "embeddings", target_is_directory=True)
    config = write_workspace(root, root / "out", catalog=root / "movies.csv")
    config.write_text(config.read_text() + PIPELINE)
    return config


@pytest.fixture(scope="module")
def first_run(pipeline_ws: Path) -> dict:
    result = run_cli("run", "--json", workspace=pipeline_ws)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def copy_of(config: Path, target: Path) -> Path:
    """Another workspace with the same inputs and a copy of the artifacts (for tests that change things)."""
    shutil.copytree(config.parent / "out", target / "out", symlinks=True)
    text = config.read_text().replace(str(config.parent / "out"), str(target / "out"))
    (target / "vibeset.toml").write_text(text)
    return target / "vibeset.toml"


def statuses(result: dict) -> dict[str, str]:
    return {stage["stage"]: stage["status"] for stage in result["stages"]}


def test_every_stage_runs_once_and_is_recorded_with_its_inputs(first_run: dict, pipeline_ws: Path) -> None:
    assert list(statuses(first_run)) == list(NAMES) and set(statuses(first_run).values()) == {"ran"}
    ws = load_workspace(pipeline_ws)
    pipeline = get_run(ws, first_run["run_id"])
    assert pipeline.kind == "pipeline" and pipeline.status == "ok"
    children = [run for run in list_runs(ws, limit=None) if run.parent_id == pipeline.run_id]
    assert sorted(run.kind for run in children) == sorted(NAMES) and all(run.status == "ok" for run in children)
    silver = next(run for run in children if run.kind == "silver")
    assert silver.inputs["teacher"] == artifacts_of(ws).annotations("zero-shot").manifest().content_id
    assert silver.outputs["silver"] == str(artifacts_of(ws).get("silver", "zero-shot").path)
    assert first_run["verdict"] and any("single human rater" in line for line in first_run["verdict"])


def test_a_second_run_with_nothing_changed_runs_nothing(first_run: dict, pipeline_ws: Path) -> None:
    again = run_cli("run", workspace=pipeline_ws)
    assert again.returncode == 0, again.stderr
    assert "nothing to do: every stage is up to date" in again.stdout
    assert again.stdout.count("up to date") == len(NAMES) + 1
    assert "verdict:" in again.stdout and len(again.stdout.splitlines()) < 40


def test_a_changed_setting_reruns_only_what_depends_on_it(first_run: dict, pipeline_ws: Path, tmp_path: Path) -> None:
    config = copy_of(pipeline_ws, tmp_path)
    config.write_text(config.read_text().replace(PIPELINE, PIPELINE + 'distill_objective = "mcc"\n'))
    result = run_cli("run", "--json", workspace=config)
    assert result.returncode == 0, result.stderr
    changed = {name for name, status in statuses(json.loads(result.stdout)).items() if status == "ran"}
    assert changed == {"distill", "label", "index", "evaluate", "eval-retrieval", "report"}


def test_a_corrupted_output_is_rebuilt_by_its_stage(first_run: dict, pipeline_ws: Path, tmp_path: Path) -> None:
    config = copy_of(pipeline_ws, tmp_path)
    part = next((tmp_path / "out" / "annotations" / "student").glob("*.parquet"))
    part.write_bytes(part.read_bytes()[:100])
    result = run_cli("run", "--json", workspace=config)
    assert result.returncode == 0, result.stderr
    assert statuses(json.loads(result.stdout))["label"] == "ran"
    assert len(read_annotations(artifacts_of(load_workspace(config)).annotations("student"))) == 400 * 26


def test_every_recommended_item_traces_back_to_the_golden_set(first_run: dict, pipeline_ws: Path) -> None:
    ws = load_workspace(pipeline_ws)
    catalog = artifacts_of(ws)
    labels = catalog.annotations("student").manifest()
    student = catalog.get("student").manifest()
    silver = catalog.get("silver", "zero-shot").manifest()
    teacher = catalog.annotations("zero-shot").manifest()
    golden = catalog.get("golden").manifest()
    client = TestClient(create_app(ws, token=""))
    user = next(iter(pd.read_csv(DATA / "ratings.csv", dtype=str)["userId"]))
    answer = client.get("/recommend", params={"user": user, "k": 5})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert items
    expected = {
        "index_version": catalog.get("index").manifest().meta["version"],
        "label_run": labels.run_id,
        "student_version": student.lineage["student_version"],
        "silver_run": silver.run_id,
        "teacher": {"model": teacher.lineage["model"], "prompt_version": teacher.lineage["prompt_version"],
                    "taxonomy_version": teacher.lineage["taxonomy_version"]},
        "golden_version": golden.lineage["golden_version"],
    }
    for item in items:
        lineage = item["lineage"]
        assert {key: lineage[key] for key in expected} == expected
        assert all(lineage[key] for key in expected) and all(expected["teacher"].values())
    video = client.get(f"/videos/{items[0]['video_id']}").json()
    assert {key: video["lineage"][key] for key in expected} == expected
    rows = read_annotations(catalog.annotations("student"))
    assert set(rows["run_id"]) == {labels.run_id} and set(rows["prompt_version"]) == {teacher.lineage["prompt_version"]}


def test_a_promoted_taxonomy_is_what_the_next_run_annotates_with(first_run: dict, pipeline_ws: Path, tmp_path: Path) -> None:
    config = copy_of(pipeline_ws, tmp_path)
    ws = load_workspace(config)
    sad = ws.taxonomy["sad"]
    edited = ws.taxonomy.with_attribute(sad.model_copy(update={"definition": "Grief or loss is the heart of the story; "
                                                                          "it leaves the viewer with a lasting sorrow."}))
    save_taxonomy(ws, edited, "r-test")
    promote(ws, edited.version[:8])
    result = run_cli("run", workspace=config)
    assert result.returncode == 0, result.stderr
    assert f"taxonomy {edited.version} (promoted)" in result.stdout
    catalog = artifacts_of(load_workspace(config))
    teacher = read_annotations(catalog.annotations("zero-shot"))
    assert set(teacher["taxonomy_version"]) == {edited.version}
    assert set(read_annotations(catalog.annotations("student"))["taxonomy_version"]) == {edited.version}
    lineage = catalog.get("index").manifest()
    assert lineage.meta["version"] in (catalog.get("index").path / "CURRENT").read_text()
    client = TestClient(create_app(load_workspace(config), token=""))
    assert client.get("/attributes").json()["attributes"][0]["name"]
    served = client.get(f"/videos/{teacher['video_id'].iloc[0]}").json()
    assert served["lineage"]["teacher"]["taxonomy_version"] == edited.version
