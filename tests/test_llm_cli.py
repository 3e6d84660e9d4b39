"""``vibeset annotate`` as a real subprocess: kill -9 and resume, golden dev + evaluate, dry run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from vibeset.annotation import read_annotations

from conftest import DATA, VIBESET, run_cli, write_workspace
from llm_server import LLMServer

LLM_TABLE = """
[llm]
concurrency = 4
flush_every = 3
backoff_s = 0.001
[llm.prices.test-model]
input = 1.0
output = 4.0
"""


@pytest.fixture()
def llm_workspace(tmp_path: Path) -> Path:
    toml = write_workspace(tmp_path / "ws", tmp_path / "artifacts")
    toml.write_text(toml.read_text() + LLM_TABLE)
    return toml


def _parts(out: Path) -> set[str]:
    return set(read_annotations(out)["video_id"]) if list(out.glob("part-*.parquet")) else set()


def test_kill_9_mid_run_then_resume_loses_nothing_and_pays_nothing_twice(llm_workspace: Path, tmp_path: Path) -> None:
    movies = pd.read_csv(DATA / "movies.csv", dtype=str).dropna(subset=["overview"]).head(40)
    videos = tmp_path / "videos.csv"
    movies.to_csv(videos, index=False)
    out = tmp_path / "out"
    args = ["annotate", "--backend", "openai", "--model", "test-model", "--videos", str(videos), "--out", str(out), "--json"]
    with LLMServer(delay=0.05) as server:
        env = {**os.environ, "VIBESET_WORKSPACE": str(llm_workspace)}
        proc = subprocess.Popen([*VIBESET, *args, "--base-url", server.base_url], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (len(_parts(out)) >= 6 and server.calls >= 12):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done_before = _parts(out)
        calls_before = server.calls
        assert 0 < len(done_before) < 40, "the kill should land mid-run"

        result = run_cli(*args, "--base-url", server.base_url, workspace=llm_workspace)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)

        labels = read_annotations(out)
        assert set(labels["video_id"]) == set(movies["movieId"])  # nothing lost
        assert not labels.duplicated(["video_id", "attribute"]).any()  # nothing twice
        assert len(labels) == 40 * 26
        assert summary["skipped"] == len(done_before) and summary["failed"] == 0
        # answers cached before the kill are replayed, not bought again
        assert summary["calls"] == 40 - len(done_before) - summary["cache_hits"]
        assert server.calls == calls_before + summary["calls"]
        titles_in_parts = set(movies.loc[movies["movieId"].isin(done_before), "title"])
        assert all(server.answered_by_title[title] == 1 for title in titles_in_parts)
        paid_twice = [title for title, count in server.answered_by_title.items() if count > 1]
        assert len(paid_twice) <= 4  # at most the calls in flight at the kill (concurrency 4)
        manifest = json.loads((out / "manifest.json").read_text())
        assert [run["status"] for run in manifest["runs"]] == ["killed", "complete"]
        assert manifest["job"]["model"] == "test-model" and manifest["runs"][1]["cost_usd"] > 0


def test_golden_dev_split_is_annotated_and_scored_by_evaluate(llm_workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "gdev"
    with LLMServer() as server:
        result = run_cli("annotate", "--backend", "openai", "--model", "test-model", "--base-url", server.base_url,
                         "--split", "golden-dev", "--out", str(out), "--concurrency", "32", "--json",
                         workspace=llm_workspace, VIBESET_LLM_API_KEY="sk-cli-SECRET-42")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["annotated"] == summary["total"] == server.calls > 100 and summary["failed"] == 0
    assert "sk-cli-SECRET-42" not in result.stdout + result.stderr
    labels = read_annotations(out)
    assert labels["video_id"].nunique() == summary["total"] and labels["source"].eq("llm").all()
    scored = run_cli("evaluate", "--annotator", f"annotations:{out}", "--split", "dev", "--bootstrap", "20", "--json",
                     workspace=llm_workspace)
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert f"annotations:{out}" in report["annotators"]


def test_dry_run_and_input_errors(llm_workspace: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n2\n3\n")
    result = run_cli("annotate", "--backend", "openai", "--model", "test-model", "--videos", str(ids),
                     "--out", str(tmp_path / "o"), "--dry-run", "--json", workspace=llm_workspace)
    assert result.returncode == 0, result.stderr
    estimate = json.loads(result.stdout)
    assert estimate["videos"] == 3 and estimate["calls"] == 3 and estimate["cost_usd"] > 0
    assert not (tmp_path / "o").exists()
    both = run_cli("annotate", "--backend", "openai", "--model", "m", "--videos", str(ids), "--split", "catalog",
                   "--out", str(tmp_path / "o"), workspace=llm_workspace)
    assert both.returncode == 2 and "exactly one of --videos" in both.stderr
    unknown = run_cli("annotate", "--backend", "claude", "--model", "m", "--videos", str(ids), "--out", str(tmp_path / "o"),
                      workspace=llm_workspace)
    assert unknown.returncode == 2 and "--backend must be zero-shot, openai or gemini, not 'claude'" in unknown.stderr


def test_books_after_kill_9_are_what_the_server_counted(llm_workspace: Path, tmp_path: Path) -> None:
    """Calls, tokens and cost of a killed run are settled from its journal by the next run."""
    movies = pd.read_csv(DATA / "movies.csv", dtype=str).dropna(subset=["overview"]).head(30)
    videos = tmp_path / "videos.csv"
    movies.to_csv(videos, index=False)
    out = tmp_path / "out"
    args = ["annotate", "--backend", "openai", "--model", "test-model", "--videos", str(videos), "--out", str(out), "--json"]
    with LLMServer(delay=0.02) as server:
        env = {**os.environ, "VIBESET_WORKSPACE": str(llm_workspace)}
        proc = subprocess.Popen([*VIBESET, *args, "--base-url", server.base_url], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.calls < 10:
            time.sleep(0.01)
        server.default = "sleep:30"  # from now on calls hang: once all 4 workers wait, nothing moves
        while time.monotonic() < deadline and server.snapshot()["in_flight"] < 4:
            time.sleep(0.01)
        counted = server.snapshot()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert counted["in_flight"] == 4 and counted["calls"] >= 10
        server.default = "ok"
        result = run_cli(*args, "--base-url", server.base_url, workspace=llm_workspace)
        assert result.returncode == 0, result.stderr
    killed, resumed = json.loads((out / "manifest.json").read_text())["runs"]
    assert killed["status"] == "killed" and resumed["status"] == "complete"
    assert killed["calls"] == counted["calls"]  # every call the server received, the 4 in flight included
    assert killed["input_tokens"] == counted["prompt_tokens"] and killed["output_tokens"] == counted["completion_tokens"]
    price = (counted["prompt_tokens"] * 1.0 + counted["completion_tokens"] * 4.0) / 1e6
    assert killed["cost_usd"] == pytest.approx(price) and killed["annotated"] == len(_parts(out)) - resumed["annotated"]


def test_all_failed_exits_non_zero_and_bad_limits_are_errors(llm_workspace: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n2\n3\n")
    base = ["annotate", "--backend", "openai", "--model", "test-model", "--videos", str(ids), "--out", str(tmp_path / "o")]
    with LLMServer() as server:
        server.default = "nonjson"
        result = run_cli(*base, "--base-url", server.base_url, workspace=llm_workspace)
    assert result.returncode == 1, result.stderr
    assert "all 3 videos to annotate failed (3 invalid_json)" in result.stderr and "Traceback" not in result.stderr
    for limit in ("0", "-1"):
        bad = run_cli(*base, "--limit", limit, "--dry-run", workspace=llm_workspace)
        assert bad.returncode == 2 and f"--limit must be a positive number of videos, got {limit}" in bad.stderr
    words = run_cli(*base, "--limit", "two", "--dry-run", workspace=llm_workspace)
    assert words.returncode == 2 and "Traceback" not in words.stderr


def test_dry_run_prices_online_and_batch(llm_workspace: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n2\n3\n")
    result = run_cli("annotate", "--backend", "openai", "--model", "test-model", "--videos", str(ids), "--out",
                     str(tmp_path / "o"), "--dry-run", workspace=llm_workspace)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("cost online"))
    online, batch = (float(part.split("$")[1].split(" ")[0].rstrip(",")) for part in line.split(", batch"))
    assert online > 0 and batch == pytest.approx(online / 2, abs=0.011)
