"""``vibeset run`` on a small real workspace: every stage recorded, nothing re-run without a reason,
lineage from a served recommendation back to the golden set, and a promoted taxonomy reaching bulk labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import DATA, PIPELINE, copy_of, run_cli
from vibeset.annotate.versions import save_taxonomy
from vibeset.annotation import read_annotations
from vibeset.artifacts import artifacts_of
from vibeset.iterate.promote import promote
from vibeset.pipeline import NAMES
from vibeset.runs import get_run, list_runs
from vibeset.serve import create_app
from vibeset.workspace import load_workspace

#: the default teacher of `vibeset run` on a workspace without an LLM
TEACHER = "evidence"


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
    assert silver.inputs["teacher"] == artifacts_of(ws).annotations(TEACHER).manifest().content_id
    assert silver.outputs["silver"] == str(artifacts_of(ws).get("silver", TEACHER).path)
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
    # the teacher's catalog thresholds follow the objective too, so the Silver Set changes; the inputs do not
    assert changed == {"teacher", "silver", "distill", "label", "ranker", "index", "evaluate", "eval-retrieval", "report"}


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
    silver = catalog.get("silver", TEACHER).manifest()
    teacher = catalog.annotations(TEACHER).manifest()
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
    teacher = read_annotations(catalog.annotations(TEACHER))
    assert set(teacher["taxonomy_version"]) == {edited.version}
    assert set(read_annotations(catalog.annotations("student"))["taxonomy_version"]) == {edited.version}
    lineage = catalog.get("index").manifest()
    assert lineage.meta["version"] in (catalog.get("index").path / "CURRENT").read_text()
    client = TestClient(create_app(load_workspace(config), token=""))
    assert client.get("/attributes").json()["attributes"][0]["name"]
    served = client.get(f"/videos/{teacher['video_id'].iloc[0]}").json()
    assert served["lineage"]["teacher"]["taxonomy_version"] == edited.version


# -- corrupt artifacts: one line naming the file, exit 2, never a traceback ------------------------------
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])


def garble(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot what this file should hold {[" * 8)


USER = "1"
CORRUPTIONS = [
    ("shards/catalog-00000.parquet", truncate, ["label", "--replace"]),
    ("shards/artifact.json", garble, ["distill"]),
    ("models/student/student.onnx", garble, ["label", "--replace"]),
    ("models/student/student.json", garble, ["label", "--replace"]),
    ("models/cf/item_factors.npy", truncate, ["index", "build"]),
    ("models/cf/items.parquet", garble, ["index", "build"]),
    ("models/evidence/dev-heldout.parquet", truncate, ["distill"]),
    ("annotations/evidence/part-evidence.parquet", truncate, ["silver"]),
    ("annotations/student/catalog-00000.parquet", truncate, ["index", "build"]),
    ("annotations/student/artifact.json", garble, ["index", "build"]),
    ("silver/evidence/part-teacher.parquet", truncate, ["distill"]),
    ("golden/artifact.json", garble, ["silver"]),
    ("index/versions/*/item_factors.npy", truncate, ["recommend", "--user", USER]),
    ("index/versions/*/manifest.json", garble, ["recommend", "--user", USER]),
    ("index/versions/*/annotations.parquet", truncate, ["recommend", "--user", USER]),
    ("index/CURRENT", garble, ["eval-retrieval"]),
    ("metrics/metrics.json", garble, ["report"]),
    ("retrieval/evaluation.json", garble, ["report"]),
    ("runs.sqlite", garble, ["runs", "list"]),
    ("embeddings/embeddings.sqlite", garble, ["embed"]),
]


@pytest.mark.parametrize("relative, damage, verb", CORRUPTIONS, ids=[f"{c[0]}:{c[1].__name__}" for c in CORRUPTIONS])
def test_a_corrupt_artifact_is_one_line_naming_the_file(first_run, pipeline_ws, tmp_path, relative, damage, verb) -> None:
    config = copy_of(pipeline_ws, tmp_path)
    embeddings = tmp_path / "out" / "embeddings"
    if relative.startswith("embeddings/"):  # the copy shares the session's cache: give it its own first
        target = embeddings.resolve()
        embeddings.unlink()
        shutil.copytree(target, embeddings)
    (path,) = list((tmp_path / "out").glob(relative))
    damage(path)
    result = run_cli(*verb, workspace=config)
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = result.stderr.strip()
    assert "Traceback" not in result.stderr and message.count("\n") == 0, result.stderr
    assert message.startswith("error: ") and str(path) in message, message


# -- one writer at a time ----------------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(first_run, pipeline_ws, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    config = copy_of(pipeline_ws, tmp_path)
    artifact = artifacts_of(load_workspace(config)).annotations("zero-shot")
    args = ["annotate", "--backend", "zero-shot", "--split", "golden-dev", "--out", str(artifact.path)]
    with artifact.lock("a test holding the lock"):
        refused = run_cli(*args, workspace=config)
    assert refused.returncode == 2
    assert f"{artifact.path} is being written by pid {os.getpid()}" in refused.stderr and "a test holding the lock" in refused.stderr
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from vibeset.artifacts import Artifact, KINDS; from pathlib import Path\n"
        f"a = Artifact(KINDS['annotations'], Path({str(artifact.path)!r}))\n"
        "with a.lock('doomed'):\n    print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    taken = run_cli(*args, workspace=config)
    assert taken.returncode == 0, taken.stderr


def test_two_llm_writers_at_once_leave_one_run_and_no_duplicates(first_run, pipeline_ws, tmp_path):
    import subprocess

    from conftest import REPO, VIBESET
    from llm_server import LLMServer

    config = copy_of(pipeline_ws, tmp_path)
    out = tmp_path / "llm"
    with LLMServer(delay=0.3) as server:  # the first writer takes ~20 s
        args = [*VIBESET, "annotate", "--backend", "openai", "--model", "m", "--base-url", server.base_url,
                "--split", "golden-dev", "--out", str(out), "--concurrency", "2", "--workspace", str(config)]
        env = {**__import__("os").environ, "VIBESET_LLM_API_KEY": "sk-test", "VIBESET_PROGRESS": "0"}
        first = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        import time

        deadline = time.monotonic() + 60
        while not (out / "artifact.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        _, first_err = first.communicate(timeout=300)
    assert second.returncode == 2 and "is being written by pid" in second.stderr
    assert first.returncode == 0, first_err
    labels = read_annotations(artifacts_of(load_workspace(config)).at(out))
    assert not labels.duplicated(["video_id", "attribute"]).any()


# -- no orphans after the driver is killed --------------------------------------------------------------
def _processes() -> dict[int, tuple[int, str]]:
    from vibeset.scale.reaper import _processes as table

    return table()


def test_a_killed_label_run_leaves_no_worker_or_ray_process(first_run, pipeline_ws, tmp_path):
    import os
    import re
    import signal
    import subprocess
    import time

    from conftest import REPO, VIBESET

    import pyarrow as pa
    import pyarrow.parquet as pq

    config = copy_of(pipeline_ws, tmp_path)
    movies = pd.read_csv(DATA / "movies.csv", dtype=str).dropna(subset=["overview"]).head(800)
    (tmp_path / "in").mkdir()
    for number in range(8):  # text shards: encoding keeps the workers busy long enough to be killed
        part = movies.iloc[number * 100 : (number + 1) * 100]
        pq.write_table(pa.table({"video_id": list(part["movieId"]), "title": list(part["title"]),
                                 "tags": list(part["genres"]), "description": list(part["overview"])}),
                       tmp_path / "in" / f"text-{number}.parquet")
    for engine in ("local", "ray"):
        process = subprocess.Popen([*VIBESET, "label", "--replace", "--engine", engine, "--workers", "2",
                                    "--videos", str(tmp_path / "in" / "*.parquet"),
                                    "--batch-rows", "16", "--out", str(tmp_path / engine), "--workspace", str(config)],
                                   cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        session = re.compile(rf"/tmp/ray/session_[0-9_-]+_{process.pid}\b")  # Ray names its session after the driver

        def ours() -> set[int]:
            table = _processes()
            found = {pid for pid, (_, cmd) in table.items() if session.search(cmd)}
            found |= {pid for pid, (parent, _) in table.items() if parent == process.pid}
            while more := {pid for pid, (parent, _) in table.items() if parent in found and pid not in found}:
                found |= more
            return found

        deadline, spawned = time.monotonic() + 90, set()
        while time.monotonic() < deadline and len(spawned) < 2:
            spawned = ours()
            time.sleep(0.2)
        assert len(spawned) >= 2, f"the {engine} engine started no workers"
        time.sleep(1.0)
        spawned |= ours()
        os.kill(process.pid, signal.SIGKILL)  # the driver only: its process group lives on
        process.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = (spawned & set(_processes())) | {pid for pid, (_, cmd) in _processes().items() if session.search(cmd)}
            if not alive:
                break
            time.sleep(0.5)
        assert not alive, f"{engine}: orphans left: {[_processes().get(p) for p in alive]}"


def test_zero_shot_labels_of_a_few_videos_join_the_others(first_run, pipeline_ws, tmp_path) -> None:
    config = copy_of(pipeline_ws, tmp_path)
    ws = load_workspace(config)
    artifact = artifacts_of(ws).annotations("zero-shot")
    whole = run_cli("annotate", "--backend", "zero-shot", "--split", "catalog", workspace=config)
    assert whole.returncode == 0, whole.stderr
    before = read_annotations(artifact)
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(list(ws.catalog.ids)[:10]) + "\n")
    result = run_cli("annotate", "--backend", "zero-shot", "--videos", str(ids), workspace=config)
    assert result.returncode == 0, result.stderr
    after = read_annotations(artifact)
    assert after["video_id"].nunique() == before["video_id"].nunique() == 400  # 10 relabelled, none lost
    pd.testing.assert_frame_equal(after.drop(columns="run_id").sort_values(["video_id", "attribute"]).reset_index(drop=True),
                                  before.drop(columns="run_id").sort_values(["video_id", "attribute"]).reset_index(drop=True))


def test_a_corrupt_version_is_one_line_naming_its_file(first_run, pipeline_ws, tmp_path) -> None:
    from vibeset.annotate.versions import save_zero_shot
    from vibeset.annotators import parse_spec, zero_shot_for
    from vibeset.golden import workspace_golden

    config = copy_of(pipeline_ws, tmp_path)
    ws = load_workspace(config)
    edited = ws.taxonomy.with_attribute(ws.taxonomy["cute"].model_copy(update={"definition": "Small, sweet and endearing."}))
    taxonomy_file = save_taxonomy(ws, edited, "r-test")
    annotator = zero_shot_for(ws, parse_spec("zero-shot"), workspace_golden(ws).split("dev"))[0]
    annotator.negative_weight = 0.25  # another version
    version = save_zero_shot(ws, annotator, "r-test")
    state = artifacts_of(ws).get("zero-shot-version", version).path / "zeroshot.json"
    for path, verb in ((taxonomy_file, ["iterate", "promote", edited.version]),
                       (state, ["evaluate", "-a", f"zero-shot@{version[:8]}"])):
        garble(path)
        result = run_cli(*verb, workspace=config)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().count("\n") == 0 and str(path) in result.stderr, result.stderr
