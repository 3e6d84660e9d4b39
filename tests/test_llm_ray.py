"""``--engine ray``: the LLM run engine in Ray actors over catalog shards, against real local HTTP servers.

Same labels, failures, counts and cost as the local engine; one shared cache across engines and
runs; a kill -9 of the real CLI mid-run loses nothing, writes nothing twice and re-bills nothing cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from vibeset.annotation import read_annotations
from vibeset.llm import LLMConfig, read_failures, run
from vibeset.llm.distributed import SHARDS_DIR, run_on_ray, shard_of
from vibeset.taxonomy import load_taxonomy
from vibeset.workspace import load_workspace

from conftest import DATA, REPO, VIBESET, run_cli, write_workspace
from llm_server import LLMServer

KEY = ["video_id", "attribute"]
VALUES = ["video_id", "attribute", "score", "label", "evidence", "source", "model", "prompt_version", "taxonomy_version"]


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(DATA / "taxonomy.yaml")


@pytest.fixture(scope="module")
def videos():
    return list(load_workspace(REPO).catalog)[:30]


def _config(**changes) -> LLMConfig:
    return LLMConfig(**{"concurrency": 4, "backoff_s": 0.001, "max_retries": 2, "flush_every": 3,
                        "prices": {"m": {"input": 1.0, "output": 4.0}}, **changes})


def _faults(server: LLMServer, videos) -> None:
    server.on_title(videos[0].title, "429:0.2", "ok")
    server.on_title(videos[1].title, "500", "ok")
    server.on_title(videos[2].title, "garbage", "ok")
    server.on_title(videos[3].title, "truncated", "ok")
    server.on_title(videos[4].title, "nonjson", "nonjson", "nonjson")  # retries run out: a failure


def _labels(out: Path) -> pd.DataFrame:
    return read_annotations(out)[VALUES].sort_values(KEY).reset_index(drop=True)


def _layout(out: Path) -> set[str]:
    return {p.name if not p.name.startswith("part-") else "part" for p in out.iterdir()} - {"cache.sqlite-wal", "cache.sqlite-shm"}


def test_ray_and_local_engines_agree_on_labels_failures_counts_and_cost(local_ray, taxonomy, videos, tmp_path) -> None:
    config = _config()
    ids = {video.video_id for video in videos}
    assert len({shard_of(i, 8) for i in ids}) > 4  # the videos really spread over shards
    with LLMServer() as a, LLMServer() as b, LLMServer() as c:
        for server in (a, b, c):
            _faults(server, videos)
        local = asyncio.run(run(videos, taxonomy, config.backend("openai", "m", a.base_url), config, tmp_path / "local"))
        backends = [config.backend("openai", "m", server.base_url) for server in (b, c)]
        seen = []
        remote = run_on_ray(videos, taxonomy, backends, config, tmp_path / "ray", shards=8, workers=2,
                            progress=lambda s: seen.append(s.finished))
        assert b.calls > 0 and c.calls > 0  # both endpoints served shards
        assert b.calls + c.calls == a.calls == remote.calls
        assert b.calls_by_title[videos[0].title] + c.calls_by_title[videos[0].title] == 2  # 429 then ok

    assert _layout(tmp_path / "ray") == _layout(tmp_path / "local") == {"part", "failures", "manifest.json", "cache.sqlite", "usage.jsonl"}
    pd.testing.assert_frame_equal(_labels(tmp_path / "ray"), _labels(tmp_path / "local"))
    labels = read_annotations(tmp_path / "ray")
    failures = read_failures(tmp_path / "ray")
    assert not labels.duplicated(KEY).any() and len(labels) == 29 * len(taxonomy)
    assert set(failures["video_id"]) == {videos[4].video_id} and failures["kind"].tolist() == ["invalid_json"]
    assert set(labels["video_id"]) | set(failures["video_id"]) == ids
    assert set(failures["video_id"]) == set(read_failures(tmp_path / "local")["video_id"])
    for field in ("annotated", "failed", "calls", "retries", "input_tokens", "output_tokens"):
        assert getattr(remote, field) == getattr(local, field), field
    assert remote.retries == local.retries == 4 + 2
    assert local.cost_usd > 0 and remote.cost_usd == pytest.approx(local.cost_usd)
    assert seen[-1] == 30 and seen == sorted(seen)  # the driver's progress only moves forward
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    entry = manifest["runs"][-1]
    assert entry["status"] == "complete" and entry["engine"] == "ray" and entry["endpoints"] == 2
    assert entry["annotated"] == 29 and entry["failed"] == 1 and entry["cost_usd"] == pytest.approx(local.cost_usd)
    assert entry["endpoint"] == sorted(backend.base_url for backend in backends) and "base_url" not in manifest["job"]
    assert set(labels["run_id"]) == {remote.run_id}


def test_second_run_is_served_from_the_shared_cache(local_ray, taxonomy, videos, tmp_path) -> None:
    config = _config(cache=tmp_path / "shared.sqlite")
    with LLMServer() as server:
        _faults(server, videos)
        backend = lambda: config.backend("openai", "m", server.base_url)  # noqa: E731
        local = asyncio.run(run(videos, taxonomy, backend(), config, tmp_path / "local"))
        assert local.annotated == 29 and local.failed == 1
        calls = server.calls
        # one endpoint: a local run's identity, so the local run's answers are replayed; the failure is retried
        first = run_on_ray(videos, taxonomy, [backend()], config, tmp_path / "ray", shards=4, workers=2)
        assert first.cache_hits == 29 and first.calls == 1 and first.annotated == 30
        assert server.calls == calls + 1
        again = run_on_ray(videos, taxonomy, [backend()], config, tmp_path / "ray2", shards=3, workers=2)
        assert again.cache_hits == 30 and again.calls == 0 and server.calls == calls + 1
        resumed = run_on_ray(videos, taxonomy, [backend()], config, tmp_path / "ray", shards=4, workers=2)
        assert resumed.skipped == 30 and resumed.calls == resumed.cache_hits == 0
    pd.testing.assert_frame_equal(_labels(tmp_path / "ray2"), _labels(tmp_path / "ray"))
    statuses = [r["status"] for r in json.loads((tmp_path / "ray" / "manifest.json").read_text())["runs"]]
    assert statuses == ["complete", "complete"]


def _done(out: Path) -> list[str]:
    """Video ids in finished parts, published or still in shard directories (a part is in one place)."""
    parts = [*out.glob("part-*.parquet"), *out.glob(f"{SHARDS_DIR}/*/part-*.parquet")]
    ids: list[str] = []
    for part in parts:
        try:
            ids.extend(dict.fromkeys(pq.read_table(part, columns=["video_id"]).column("video_id").to_pylist()))
        except (FileNotFoundError, OSError):
            pass  # published between the glob and the read
    return ids


def _wait_for_actors_to_die(session: int, timeout: float = 30) -> None:
    """Wait until no live shard actor is left in the killed CLI's session (Linux /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = False
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError):
                head, rest = stat.read_text().rsplit(")", 1)
                state, _, _, sid = rest.split()[:4]
                alive |= head.split("(", 1)[1].startswith("ray::Shard") and state != "Z" and int(sid) == session
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError("the killed run's actors outlived it")


def test_kill_9_of_a_ray_run_then_resume_loses_nothing_and_pays_nothing_twice(tmp_path) -> None:
    toml = write_workspace(tmp_path / "ws", tmp_path / "artifacts")
    toml.write_text(toml.read_text() + "\n[llm]\nconcurrency = 3\nflush_every = 2\nbackoff_s = 0.001\n")
    movies = pd.read_csv(DATA / "movies.csv", dtype=str).dropna(subset=["overview"]).head(40)
    videos = tmp_path / "videos.csv"
    movies.to_csv(videos, index=False)
    out = tmp_path / "out"
    with LLMServer(delay=0.4) as a, LLMServer(delay=0.4) as b:
        args = ["annotate", "--backend", "openai", "--model", "m", "--videos", str(videos), "--out", str(out),
                "--engine", "ray", "--workers", "2", "--shards", "6", "--ray-cpus", "2", "--json",
                "--base-url", a.base_url, "--base-url", b.base_url]
        env = {**os.environ, "VIBESET_WORKSPACE": str(toml)}
        # its own session: Ray's helper processes orphaned by the kill are found and ended by it afterwards
        proc = subprocess.Popen([*VIBESET, *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None and len(_done(out)) < 8:
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            _wait_for_actors_to_die(proc.pid)  # orphaned by the kill, they go with their raylet
            done_before = _done(out)
            calls_before = a.calls + b.calls
            assert 8 <= len(done_before) < 40, "the kill should land mid-run"

            result = run_cli(*args, workspace=toml)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        answered = a.answered_by_title + b.answered_by_title

    labels = read_annotations(out)
    assert set(labels["video_id"]) == set(movies["movieId"])  # nothing lost
    assert not labels.duplicated(KEY).any() and len(labels) == 40 * 26  # nothing twice
    assert not (out / SHARDS_DIR).exists()
    assert summary["skipped"] == len(set(done_before)) and summary["failed"] == 0
    # answers cached before the kill are replayed, not bought again
    assert summary["calls"] == 40 - summary["skipped"] - summary["cache_hits"]
    assert a.calls + b.calls == calls_before + summary["calls"]
    titles_in_parts = set(movies.loc[movies["movieId"].isin(done_before), "title"])
    assert all(answered[title] == 1 for title in titles_in_parts)
    paid_twice = [title for title, count in answered.items() if count > 1]
    assert len(paid_twice) <= 2 * 3  # at most the calls in flight at the kill (2 actors x concurrency 3)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["killed", "complete"]
    killed = manifest["runs"][0]  # its books settled from the shards' journal lines
    assert calls_before <= killed["calls"] <= calls_before + 2 * 3  # journaled as sent: at most those in flight more
    assert killed["annotated"] == len(set(done_before)) and killed["cost_usd"] is None  # no price for m here
    assert manifest["runs"][1]["engine"] == "ray" and manifest["runs"][1]["annotated"] == 40 - summary["skipped"]
