"""Batch mode against a local files/batches protocol server: submit, poll, collect, faults re-queued,
kill -9 of the driver and resume, books at half price, the same cache and layout as online."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from vibeset.annotation import read_annotations
from vibeset.llm import LLMConfig, estimate, read_failures, run
from vibeset.taxonomy import load_taxonomy
from vibeset.workspace import load_workspace

from batch_server import BatchServer
from conftest import DATA, REPO, VIBESET, run_cli, write_workspace
from llm_server import LLMServer

KEY = ["video_id", "attribute"]
VALUES = ["video_id", "attribute", "score", "label", "evidence", "prompt_version", "taxonomy_version"]
PRICE = {"m": {"input": 1.0, "output": 4.0}}


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(DATA / "taxonomy.yaml")


@pytest.fixture(scope="module")
def videos():
    return list(load_workspace(REPO).catalog)[:16]


def _config(**changes) -> LLMConfig:
    return LLMConfig(**{"mode": "batch", "batch_poll_s": 0.02, "batch_poll_max_s": 0.05, "backoff_s": 0.001,
                        "max_retries": 2, "flush_every": 4, "batch_size": 6, "prices": PRICE, **changes})


def _labels(out: Path) -> pd.DataFrame:
    return read_annotations(out)[VALUES].sort_values(KEY).reset_index(drop=True)


def _url(server: LLMServer, provider: str) -> str:
    return server.base_url if provider == "openai" else f"http://127.0.0.1:{server.port}"


def _online(videos, taxonomy, provider: str, config: LLMConfig, out: Path) -> LLMServer:
    with LLMServer() as server:
        asyncio.run(run(videos, taxonomy, config.backend(provider, "m", _url(server, provider)), config, out))
    return server


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_batch_mode_collects_requeues_faults_and_keeps_the_books(provider, taxonomy, videos, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test-key-0123456789")
    with BatchServer() as server:
        server.upload_faults.extend(["503", "ok"])  # the first upload is unavailable: backed off and retried
        server.batch_faults.extend(["expire", "malformed:2", "fail", "ok"])
        server.llm.on_title(videos[0].title, "500", "ok")  # an error-file line, then an answer
        server.llm.on_title(videos[1].title, "nonjson", "ok")  # an unusable answer, then a good one
        server.llm.on_title(videos[2].title, "nonjson", "nonjson", "nonjson")  # out of attempts: a failure
        url = server.base_url if provider == "openai" else server.gemini_url
        config = _config()
        summary = asyncio.run(run(videos, taxonomy, config.backend(provider, "m", url), config, tmp_path / "batch"))
        counts, billed, lost = dict(server.counts), dict(server.llm.billed), dict(server.lost)

    labels, failures = read_annotations(tmp_path / "batch"), read_failures(tmp_path / "batch")
    ids = {v.video_id for v in videos}
    assert set(labels["video_id"]) | set(failures["video_id"]) == ids and not set(labels["video_id"]) & set(failures["video_id"])
    assert not labels.duplicated(KEY).any() and len(labels) == 15 * len(taxonomy)
    assert failures["video_id"].tolist() == [videos[2].video_id] and failures["kind"].tolist() == ["invalid_json"]
    assert summary.annotated == 15 and summary.failed == 1 and summary.mode == "batch"
    # 16 requests in 3 batches: one expired (half re-queued), one with 2 lines cut short, one failed whole
    assert counts["uploads"] == counts["batches"] + 1 and summary.batches == counts["batches"] >= 4
    assert summary.calls == counts["requests"]  # every request the provider ran is booked, nothing else
    read_in, read_out = billed["prompt_tokens"] - lost["prompt_tokens"], billed["completion_tokens"] - lost["completion_tokens"]
    assert lost["prompt_tokens"] > 0 and summary.input_tokens == read_in and summary.output_tokens == read_out
    assert summary.cost_usd == pytest.approx((read_in * 1.0 + read_out * 4.0) / 1e6 / 2)  # batch price: half
    usage = [json.loads(line) for line in (tmp_path / "batch" / "usage.jsonl").read_text().splitlines()]
    assert sum(line.get("calls", 0) for line in usage) == summary.calls
    state = json.loads((tmp_path / "batch" / "batches.json").read_text())
    assert all(batch["state"] == "collected" for batch in state["batches"])
    # the same labels as online (the same server logic answers them) ...
    good = [v for v in videos if v.video_id != videos[2].video_id]
    _online(good, taxonomy, provider, LLMConfig(concurrency=4, prices=PRICE), tmp_path / "online")
    pd.testing.assert_frame_equal(_labels(tmp_path / "batch"), _labels(tmp_path / "online"))
    # ... and the same cache: online replays what the batches bought, for free
    replay = LLMConfig(cache=tmp_path / "batch" / "cache.sqlite", prices=PRICE)
    server = _online(good, taxonomy, provider, replay, tmp_path / "replay")
    assert server.calls == 0 and len(read_annotations(tmp_path / "replay")) == 15 * len(taxonomy)


def test_a_rejected_upload_fails_its_videos_with_the_providers_reason(taxonomy, videos, tmp_path) -> None:
    with BatchServer() as server:
        server.upload_faults.append("400")
        config = _config(batch_size=100)
        summary = asyncio.run(run(videos[:5], taxonomy, config.backend("openai", "m", server.base_url), config, tmp_path))
        assert server.counts["uploads"] == 1 and server.counts["batches"] == 0  # a 4xx is not retried
    failures = read_failures(tmp_path)
    assert summary.failed == 5 and summary.annotated == 0 and summary.calls == 0 and summary.cost_usd == 0
    assert set(failures["kind"]) == {"bad_request"} and failures["message"].str.contains("not valid JSONL").all()


def test_dry_run_prices_online_and_batch_side_by_side(taxonomy, videos) -> None:
    config = _config()
    result = estimate(videos, taxonomy, config.backend("openai", "m", "http://127.0.0.1:9/v1"), config)
    assert result.calls == len(videos) and result.cost_usd > 0
    assert result.batch_cost_usd == pytest.approx(result.cost_usd / 2) and result.mode == "batch"


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    toml = write_workspace(tmp_path / "ws", tmp_path / "artifacts")
    toml.write_text(toml.read_text() + "\n[llm]\nbatch_poll_s = 0.05\nbatch_poll_max_s = 0.1\nbatch_size = 5\n"
                    "backoff_s = 0.001\nflush_every = 2\n[llm.prices.m]\ninput = 1.0\noutput = 4.0\n")
    movies = pd.read_csv(DATA / "movies.csv", dtype=str).dropna(subset=["overview"]).head(15)
    videos = tmp_path / "videos.csv"
    movies.to_csv(videos, index=False)
    return toml, videos


def _kill_when(proc: subprocess.Popen, condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        assert proc.poll() is None, "the driver ended before the kill"
        time.sleep(0.02)
    assert condition(), "the kill condition never held"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("window", ["polling", "creating"])
def test_kill_9_of_the_driver_then_resume_submits_nothing_twice(window, tmp_path) -> None:
    """Killed while its batches run (polling), or after a batch exists but before its id was recorded
    (creating): the resumed run finds every batch, pays for each request once and loses nothing."""
    toml, videos = _workspace(tmp_path)
    out = tmp_path / "out"
    with BatchServer() as server:
        args = ["annotate", "--backend", "openai", "--model", "m", "--videos", str(videos), "--out", str(out),
                "--batch", "--base-url", server.base_url, "--json"]
        server.paused = True  # batches stay in progress until the driver is dead
        if window == "creating":
            server.create_delay = 30.0
        env = {**os.environ, "VIBESET_WORKSPACE": str(toml)}
        proc = subprocess.Popen([*VIBESET, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        expected = 3 if window == "polling" else 1
        _kill_when(proc, lambda: server.counts["batches"] == expected and (window == "creating" or server.counts["polls"] >= 3))
        state = json.loads((out / "batches.json").read_text())
        recorded = [batch["id"] for batch in state["batches"]]
        assert recorded == (["batch-1", "batch-2", "batch-3"] if window == "polling" else [None])
        server.paused, server.create_delay = False, 0.0
        result = run_cli(*args, workspace=toml)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert server.counts["batches"] == 3  # the killed run's batches were found, none submitted again
        assert server.counts["requests"] == 15 and server.llm.calls == 15  # each request run once
    labels = read_annotations(out)
    assert set(labels["video_id"]) == set(pd.read_csv(videos, dtype=str)["movieId"]) and not labels.duplicated(KEY).any()
    assert summary["annotated"] == 15 and summary["failed"] == 0 and summary["calls"] == 15
    runs = json.loads((out / "manifest.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["killed", "complete"] and runs[1]["cost_usd"] > 0


def test_videos_with_the_same_content_share_one_request(taxonomy, videos, tmp_path) -> None:
    twin = dataclasses.replace(videos[0], video_id="twin-of-" + videos[0].video_id)
    with BatchServer() as server:
        config = _config()
        summary = asyncio.run(run([videos[0], twin, videos[1]], taxonomy, config.backend("openai", "m", server.base_url),
                                  config, tmp_path))
        assert server.counts["requests"] == 2 and summary.calls == 2  # one custom id per distinct request
    assert summary.annotated == 3 and set(read_annotations(tmp_path)["video_id"]) == {videos[0].video_id, twin.video_id,
                                                                                     videos[1].video_id}
