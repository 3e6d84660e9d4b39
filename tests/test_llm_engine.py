"""The run engine against a real local HTTP server: faults, cache, resume, secrets, frames, Gemini."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from yarl import URL

from vibeset.annotation import COLUMNS, Annotator, read_annotations
from vibeset.catalog import Video
from vibeset.errors import ConfigError
from vibeset.llm import LLMAnnotator, LLMConfig, estimate, read_failures, run
from vibeset.llm.frames import sample_frames
from vibeset.llm.openai_backend import environment_proxy
from vibeset.llm.ratelimit import RateLimiter
from vibeset.taxonomy import load_taxonomy
from vibeset.workspace import load_workspace

from conftest import DATA, REPO
from llm_server import LLMServer

SECRET = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(DATA / "taxonomy.yaml")


@pytest.fixture(scope="module")
def videos() -> list[Video]:
    return list(load_workspace(REPO).catalog)[:24]


@pytest.fixture()
def server():
    with LLMServer() as llm:
        yield llm


def _config(**changes) -> LLMConfig:
    return LLMConfig(**{"concurrency": 8, "backoff_s": 0.001, "max_retries": 2, "flush_every": 5, **changes})


def _run(videos, taxonomy, server, out, config=None, model="test-model", base_url=None, **kwargs):
    config = config or _config()
    backend = config.backend("openai", model, base_url or server.base_url)
    return asyncio.run(run(videos, taxonomy, backend, config, out, **kwargs))


def test_faults_are_retried_then_recorded_and_nothing_is_lost(videos, taxonomy, server, tmp_path) -> None:
    config = _config(timeout_s=0.3)
    attempts = config.max_retries + 1
    recovers = {0: "429:0.01", 1: "500", 2: "sleep:0.6", 3: "garbage", 4: "truncated", 5: "nonjson", 6: "unknown", 7: "missing"}
    for index, fault in recovers.items():
        server.on_title(videos[index].title, fault, "ok")
    doomed = {8: ("nonjson", "invalid_json"), 9: ("unknown", "unknown_attribute"), 10: ("missing", "missing_attribute"),
              11: ("500", "server_error"), 12: ("badconf", "invalid_value"), 13: ("garbage", "bad_response")}
    for index, (fault, _) in doomed.items():
        server.on_title(videos[index].title, *[fault] * attempts)
    server.on_title(videos[14].title, "fenced")

    summary = _run(videos, taxonomy, server, tmp_path, config)

    labels = read_annotations(tmp_path)
    failures = read_failures(tmp_path)
    annotated, failed = set(labels["video_id"]), set(failures["video_id"])
    assert annotated | failed == {v.video_id for v in videos} and not annotated & failed
    assert not labels.duplicated(["video_id", "attribute"]).any()
    assert (labels.groupby("video_id").size() == len(taxonomy)).all()
    assert failed == {videos[i].video_id for i in doomed}
    kinds = dict(zip(failures["video_id"], failures["kind"]))
    for index, (_, kind) in doomed.items():
        assert kinds[videos[index].video_id] == kind
        assert server.calls_by_title[videos[index].title] == attempts
    raw = dict(zip(failures["video_id"], failures["raw"]))
    assert raw[videos[8].video_id] == "I think this film is lovely and everything applies!"
    assert "not-a-vibe" in raw[videos[9].video_id]
    assert set(failures["attempts"]) == {attempts}
    assert summary.annotated == len(videos) - len(doomed) and summary.failed == len(doomed)
    assert summary.retries == len(recovers) + len(doomed) * (attempts - 1)
    assert summary.calls == server.calls
    assert labels["source"].eq("llm").all() and labels["run_id"].eq(summary.run_id).all()
    assert labels["prompt_version"].eq(summary.prompt_version).all() and labels["model"].eq("test-model").all()


def test_retry_after_is_honoured(videos, taxonomy, server, tmp_path) -> None:
    server.on_title(videos[0].title, "429:0.5", "ok")
    started = time.monotonic()
    summary = _run(videos[:1], taxonomy, server, tmp_path, _config(backoff_s=0.001))
    assert summary.annotated == 1 and summary.retries == 1
    assert time.monotonic() - started >= 0.5


def test_cache_prevents_a_second_call_and_never_holds_failures(videos, taxonomy, server, tmp_path) -> None:
    batch = videos[:10]
    server.on_title(batch[0].title, *["nonjson"] * 3)
    shared = _config(cache=tmp_path / "cache.sqlite")
    first = _run(batch, taxonomy, server, tmp_path / "a", shared)
    assert first.calls == 9 + 3 and server.calls == 12 and first.failed == 1
    # a fresh output directory, same cache: answers replayed, only the failure is called again
    second = _run(batch, taxonomy, server, tmp_path / "b", shared)
    assert second.cache_hits == 9 and second.calls == 1 and server.calls == 13
    assert second.annotated == 10 and second.input_tokens < first.input_tokens
    pd_a, pd_b = read_annotations(tmp_path / "a"), read_annotations(tmp_path / "b")
    assert pd_a.set_index(["video_id", "attribute"])["label"].equals(
        pd_b.set_index(["video_id", "attribute"]).loc[pd_a.set_index(["video_id", "attribute"]).index, "label"]
    )
    # the same directory again: everything done, nothing called
    third = _run(batch, taxonomy, server, tmp_path / "b", shared)
    assert third.skipped == 10 and third.calls == 0 and third.cache_hits == 0 and server.calls == 13
    assert len(read_annotations(tmp_path / "b")) == 10 * len(taxonomy)
    # another model is another cache entry, and another job that needs its own directory
    with pytest.raises(ConfigError, match="different model"):
        _run(batch, taxonomy, server, tmp_path / "b", shared, model="other-model")
    assert server.calls == 13


def _open_cache_and_answer(path: str, barrier, key: str) -> None:
    from vibeset.llm.backend import Completion
    from vibeset.llm.cache import ResponseCache

    barrier.wait()  # every worker opens the new cache at once, as shard workers do
    cache = ResponseCache(path)
    cache.put(key, Completion("{}", 1, 1))
    cache.close()


def test_workers_opening_one_new_cache_together_all_succeed(tmp_path) -> None:
    import multiprocessing

    from vibeset.llm.cache import ResponseCache

    context = multiprocessing.get_context("forkserver")  # forking pytest's threads could deadlock a worker
    context.set_forkserver_preload(["vibeset.llm.cache"])
    for trial in range(6):
        path, barrier = str(tmp_path / f"cache-{trial}.sqlite"), context.Barrier(16)
        workers = [context.Process(target=_open_cache_and_answer, args=(path, barrier, f"k{n}")) for n in range(16)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [worker.exitcode for worker in workers] == [0] * 16
        cache = ResponseCache(path)
        assert len(cache) == 16
        cache.close()


def test_secrets_never_reach_artifacts_cache_or_logs(videos, taxonomy, server, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("VIBESET_LLM_API_KEY", SECRET)
    server.on_title(videos[0].title, *["nonjson"] * 3)
    server.on_title(videos[1].title, "500", "ok")
    with caplog.at_level(logging.DEBUG):
        summary = _run(videos[:4], taxonomy, server, tmp_path)
    assert server.auth_headers == {f"Bearer {SECRET}"}  # the key was really used
    assert summary.failed == 1
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "cache.sqlite" for path in files) and any("failures" in str(path) for path in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
        assert b"SECRET-0123" not in path.read_bytes(), path
    assert SECRET not in caplog.text and SECRET not in repr(summary)


def test_a_key_the_provider_echoes_is_redacted_from_every_stored_error(videos, taxonomy, server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VIBESET_LLM_API_KEY", SECRET)
    server.on_title(videos[0].title, "echokey")
    server.on_title(videos[1].title, "echomask")
    summary = _run(videos[:3], taxonomy, server, tmp_path)
    assert summary.failed == 2 and summary.annotated == 1
    failures = read_failures(tmp_path)
    assert set(failures["kind"]) == {"bad_request"}
    for text in [*failures["message"], *failures["raw"]]:
        assert "Incorrect API key provided: [redacted key]" in text, text
        assert SECRET not in text and SECRET[:8] + "*" * 8 + SECRET[-4:] not in text
    for path in tmp_path.rglob("*"):
        assert path.is_dir() or b"SECRET-0123" not in path.read_bytes(), path


def test_the_endpoint_is_not_part_of_the_cache_key_or_the_job(videos, taxonomy, tmp_path) -> None:
    shared = _config(cache=tmp_path / "cache.sqlite")
    with LLMServer() as first:
        _run(videos[:6], taxonomy, first, tmp_path / "a", shared)
        assert first.calls == 6
    with LLMServer() as moved:  # the same model served on another port
        assert moved.port != first.port
        resumed = _run(videos[:8], taxonomy, moved, tmp_path / "a", shared)  # the same job: resumed, not refused
        assert resumed.skipped == 6 and resumed.annotated == 2 and moved.calls == 2
        fresh = _run(videos[:8], taxonomy, moved, tmp_path / "b", shared)
        assert fresh.cache_hits == 8 and fresh.calls == 0 and moved.calls == 2
    entries = json.loads((tmp_path / "a" / "manifest.json").read_text())["runs"]
    assert [entry["endpoint"] for entry in entries] == [first.base_url, moved.base_url]  # lineage keeps where


def test_the_proxy_the_environment_names_is_used_unless_no_proxy_names_the_host(videos, taxonomy, server, tmp_path,
                                                                              monkeypatch) -> None:
    # looked up once per session, not per request (aiohttp's trust_env costs a thread hop a call)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")  # the test server answers as the proxy
    summary = _run(videos[:3], taxonomy, server, tmp_path / "out", base_url="http://llm.invalid/v1")
    assert summary.annotated == 3 and server.calls == 3
    assert environment_proxy("http://llm.invalid/v1")[0] == URL(f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("NO_PROXY", "llm.invalid")
    assert environment_proxy("http://llm.invalid/v1") == (None, None)


def test_self_consistency_votes(videos, taxonomy, server, tmp_path) -> None:
    server.on_title(videos[0].title, "ok", "flip", "ok")
    summary = _run(videos[:1], taxonomy, server, tmp_path, _config(samples=3, temperature=0.7))
    assert summary.calls == 3 and summary.annotated == 1
    labels = read_annotations(tmp_path)
    assert sorted(set(np.round(labels["score"].astype(float), 3))) == [0.333, 0.667]
    assert (labels["label"] == (labels["score"] > 0.5)).all()
    again = _run(videos[:1], taxonomy, server, tmp_path / "again", _config(samples=3, temperature=0.7, cache=tmp_path / "cache.sqlite"))
    assert again.cache_hits == 3 and again.calls == 0


def test_dry_run_estimate_calls_nothing(videos, taxonomy, server, tmp_path) -> None:
    config = _config(prices={"test-model": {"input": 1.0, "output": 4.0}})
    backend = config.backend("openai", "test-model", server.base_url)
    before = estimate(videos, taxonomy, backend, config, tmp_path)
    assert server.calls == 0 and before.calls == len(videos) and before.already_annotated == 0
    assert before.input_tokens_per_call > 1000 and before.output_tokens == len(videos) * len(taxonomy) * 40
    assert before.cost_usd == pytest.approx((before.input_tokens * 1.0 + before.output_tokens * 4.0) / 1e6, rel=1e-3)
    _run(videos[:10], taxonomy, server, tmp_path, config)
    after = estimate(videos, taxonomy, backend, config, tmp_path)
    assert after.calls == len(videos) - 10 and after.already_annotated == 10 and server.calls == 10


def test_rate_limiter_spaces_requests() -> None:
    async def burst() -> float:
        limiter = RateLimiter(requests_per_minute=1200)  # 20/s, a one-second bucket
        started = time.monotonic()
        for _ in range(30):
            await limiter.acquire()
        return time.monotonic() - started

    assert asyncio.run(burst()) >= 0.45


def test_llm_annotator_is_an_annotator(videos, taxonomy, server, tmp_path) -> None:
    annotator = LLMAnnotator(_config().backend("openai", "test-model", server.base_url), _config(), tmp_path)
    assert isinstance(annotator, Annotator) and annotator.source == "llm"
    frame = annotator.annotate(videos[:3], taxonomy)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 3 * len(taxonomy)
    assert annotator.summary_.annotated == 3
    assert len(annotator.annotate(videos[:2], taxonomy)) == 2 * len(taxonomy) and server.calls == 3


def _make_video(path: Path, seconds: int = 2, fps: int = 10) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(seconds * fps):
            pixels = np.full((64, 96, 3), (index * 12) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_frames_are_sampled_from_a_real_video_and_sent_as_images(videos, taxonomy, server, tmp_path) -> None:
    clip = _make_video(tmp_path / "clip.mp4")
    frames = sample_frames(clip, 4, size=48)
    assert len(frames) == 4 and all(f[:2] == b"\xff\xd8" for f in frames)
    images = [Image.open(io.BytesIO(f)) for f in frames]
    assert all(max(image.size) <= 48 for image in images)
    brightness = [np.asarray(image).mean() for image in images]
    assert brightness == sorted(brightness) and brightness[0] < brightness[-1]  # spread over time
    assert len(sample_frames(clip, 8, max_fps=1.0)) == 2
    video = Video("clip", "A grey clip", "Brightness rises.", media=str(clip))
    summary = _run([video], taxonomy, server, tmp_path / "out", _config(frames=3, frame_size=32))
    assert summary.annotated == 1
    content = server.requests[-1]["messages"][1]["content"]
    assert [part["type"] for part in content] == ["text", "image_url", "image_url", "image_url"]
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    broken = Video("broken", "Missing", "No file.", media=str(tmp_path / "missing.mp4"))
    summary = _run([broken], taxonomy, server, tmp_path / "out2", _config(frames=3))
    assert summary.failed == 1 and read_failures(tmp_path / "out2")["kind"].tolist() == ["media_error"]


def test_gemini_backend_over_http_with_frames(videos, taxonomy, server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    clip = _make_video(tmp_path / "clip.mp4")
    batch = [*videos[:3], Video("clip", "A grey clip", "Brightness rises.", media=str(clip))]
    server.on_title(videos[0].title, "429:0.01", "ok")
    config = _config(frames=2)
    backend = config.backend("gemini", "gemini-test", f"http://127.0.0.1:{server.port}")
    summary = asyncio.run(run(batch, taxonomy, backend, config, tmp_path / "out"))
    assert summary.annotated == 4 and summary.retries == 1 and summary.input_tokens > 0
    assert server.auth_headers == {SECRET}
    request = next(r for r in server.requests if len(r["contents"][0]["parts"]) > 1)
    assert request["generationConfig"]["responseMimeType"] == "application/json"
    assert [("inlineData" in p) for p in request["contents"][0]["parts"]] == [False, True, True]
    assert len(read_annotations(tmp_path / "out")) == 4 * len(taxonomy)
    for path in (tmp_path / "out").rglob("*"):
        assert path.is_dir() or SECRET.encode() not in path.read_bytes()


def test_a_native_video_answer_is_replayed_from_the_cache(videos, taxonomy, server, tmp_path, monkeypatch) -> None:
    # the key of a request that carries the video (not frames) is the key the run looks up
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    clips = [Video(f"clip{i}", f"Clip {i}", "A grey clip.", media=f"gs://bucket/clip{i}.mp4") for i in range(3)]
    config = _config(native_video=True, cache=tmp_path / "cache.sqlite")
    for out in ("first", "second"):
        backend = config.backend("gemini", "gemini-test", f"http://127.0.0.1:{server.port}")
        summary = asyncio.run(run(clips, taxonomy, backend, config, tmp_path / out))
        assert summary.annotated == 3
    assert summary.cache_hits == 3 and summary.calls == 0 and server.calls == 3
    assert all("gs://bucket/clip" in str(r["contents"][0]["parts"][0]["fileData"]) for r in server.requests)


def test_the_shared_progress_bar_takes_totals_and_details(monkeypatch) -> None:
    """The one progress protocol, as annotate drives it (total known later, a detail line) and as before."""
    from vibeset import progress

    monkeypatch.setenv("VIBESET_PROGRESS", "1")
    with progress.progress_bar(None, "annotate", detail=True) as advance:
        advance(0, total=3, detail="0.0 videos/s  0 tok  -")
        advance(3, detail="9.9 videos/s  1,234 tok  $0.0100")
    with progress.progress_bar(2, "encoding") as advance:
        advance(1)
        advance(1)
    monkeypatch.setenv("VIBESET_PROGRESS", "0")
    with progress.progress_bar(5, "quiet", detail=True) as advance:
        advance(5, total=5, detail="ignored")
