"""Run-engine throughput against the local test server (100 ms per call, concurrency 64).

For each configuration (``logprobs`` off: the engine's own overhead; on: the default, whose
answers carry ~1,300 token logprobs each), ``--repeats`` times: the latency of one call made
alone through a warm client (the baseline, measured in the same run), the Little's-law bound
(concurrency / that latency), the calls/s achieved over ``--videos`` videos and the engine's CPU
per call. Prints each run, the medians, the load average, the same requests sent by a bare
aiohttp client that decodes each answer as the engine does (the floor any engine on this client
pays), and what the per-call CPU is spent on (each step timed alone on a real answer: decode,
parse, logprobs, cache, rows, journal; the rest is the HTTP client and the event loop). Before the
runs, one untimed pass makes the test server build each answer's logprobs once, so its CPU is
not what the runs measure.

    .venv/bin/python bench/llm_engine.py [--videos 1280] [--delay 0.1] [--concurrency 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp

from vibeset.llm import LLMConfig, Prompt, run
from vibeset.llm.cache import ResponseCache
from vibeset.llm.confidence import label_probabilities
from vibeset.llm.job import Job, _rows
from vibeset.llm.openai_backend import completion_of
from vibeset.llm.store import RunStore
from vibeset.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from llm_server import LLMServer, chat_reply  # noqa: E402  (the test server's own answer, for the breakdown)


async def _call_latency(backend, taxonomy, video, calls: int = 10) -> float:
    request = Prompt(taxonomy).render(video)
    await backend.complete(request)  # connect
    started = time.perf_counter()
    for _ in range(calls):
        await backend.complete(request)
    elapsed = time.perf_counter() - started
    await backend.aclose()
    return elapsed / calls


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), to show what the test server costs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _once(ws, videos, base_url: str, config: LLMConfig, server_pid: int, tmp: Path) -> dict[str, float]:
    latency = asyncio.run(_call_latency(config.backend("openai", "bench", base_url), ws.taxonomy, videos[0]))
    cpu, wall, server_cpu = time.process_time(), time.perf_counter(), _cpu_seconds(server_pid)
    summary = asyncio.run(run(videos, ws.taxonomy, config.backend("openai", "bench", base_url), config, tmp))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert summary.annotated == len(videos) and summary.calls == len(videos), summary
    rate = summary.calls / wall
    return {"latency_ms": latency * 1000, "bound": config.concurrency / latency, "rate": rate,
            "ratio": rate * latency / config.concurrency, "cpu_ms": cpu / summary.calls * 1000,
            "server_cpu_ms": (_cpu_seconds(server_pid) - server_cpu) / summary.calls * 1000}


async def _floor_calls(base_url: str, bodies: list[bytes], concurrency: int) -> None:
    """The same requests through a bare aiohttp session, each answer decoded as the engine decodes it: no engine."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        queue = iter(bodies)

        async def worker() -> None:
            for body in queue:
                async with session.post(f"{base_url}/chat/completions", data=body,
                                        headers={"Content-Type": "application/json"}) as response:
                    completion_of(await response.read())

        await asyncio.gather(*[worker() for _ in range(concurrency)])


def _bodies(ws, videos, base_url: str, config: LLMConfig) -> list[bytes]:
    backend = config.backend("openai", "bench", base_url)
    prompt = Prompt(ws.taxonomy)
    return [backend.encoded(prompt.render(video)) for video in videos]


def floor(ws, videos, base_url: str, config: LLMConfig) -> dict[str, float]:
    """What the HTTP client alone reaches against the same server, in the same run."""
    bodies = _bodies(ws, videos, base_url, config)
    latency = asyncio.run(_call_latency(config.backend("openai", "bench", base_url), ws.taxonomy, videos[0]))
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(_floor_calls(base_url, bodies, config.concurrency))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rate = len(bodies) / wall
    return {"ratio": rate * latency / config.concurrency, "rate": rate, "cpu_ms": cpu / len(bodies) * 1000}


def _timed(step: Callable[[], Any], n: int = 200) -> float:
    started = time.process_time()
    for _ in range(n):
        step()
    return (time.process_time() - started) / n * 1000


def breakdown(ws, video, logprobs: bool, tmp: Path) -> dict[str, float]:
    """CPU ms of each per-call step, timed alone on one real answer of the test server."""
    config = LLMConfig(logprobs=logprobs)
    backend = config.backend("openai", "bench", "http://127.0.0.1:9/v1")
    job = Job(ws.taxonomy, backend, config, None)
    request = job.prompt.render(video)
    _, _, raw = chat_reply(LLMServer(), backend.body(request))
    completion = completion_of(raw)
    cache, store = ResponseCache(tmp / "c.sqlite"), RunStore(tmp / "out", job.job(), "bench")
    answered = job.answer(completion)
    sampled, keep = answered
    keys = iter(range(10**9))
    steps = {
        "render + cache key": lambda: job.keys(video, job.prompt.render(video)),
        "request body JSON": lambda: backend.encoded(request),
        "response JSON decode": lambda: completion_of(raw),
        "answer parse": lambda: job.parse(completion),
        "label logprobs": lambda: label_probabilities(completion.text, completion.logprobs, job.names),
        "cache put": lambda: cache.put(f"k{next(keys)}", keep),
        "rows": lambda: _rows(video, [sampled], job, "bench"),
        "journal (2 lines)": lambda: (store.journal({"calls": 1}), store.journal({"input_tokens": 1, "output_tokens": 1})),
    }
    times = {name: _timed(step) for name, step in steps.items()}
    times["response bytes"] = len(raw) / 1000  # kB, not ms
    cache.close()
    store.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1280)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ws = load_workspace(REPO)
    videos = list(ws.catalog)[: args.videos]
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "llm_server.py"), "--delay", str(args.delay)], stdout=subprocess.PIPE, text=True
    )
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    floors: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    loads = []
    try:
        base_url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"
        # the test server remembers each answer's logprobs (~5 ms of its CPU to build, on the same
        # 2 cores as the engine): built once here, untimed, so the timed runs measure the client
        asyncio.run(_floor_calls(base_url, _bodies(ws, videos, base_url, LLMConfig(logprobs=True)), args.concurrency))
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for logprobs in (False, True):
                    config = LLMConfig(concurrency=args.concurrency, flush_every=256, logprobs=logprobs,
                                       cache=Path(tmp) / f"cache-{repeat}-{logprobs}.sqlite")
                    results[logprobs].append(_once(ws, videos, base_url, config, server.pid, Path(tmp) / f"{repeat}-{logprobs}"))
                    loads.append(os.getloadavg()[0])
                for logprobs in (False, True):
                    floors[logprobs].append(floor(ws, videos, base_url, LLMConfig(concurrency=args.concurrency,
                                                                                  logprobs=logprobs)))
            parts = {logprobs: breakdown(ws, videos[0], logprobs, Path(tmp) / f"b-{logprobs}") for logprobs in (False, True)}
    finally:
        server.terminate()
        server.wait()

    print(f"videos: {len(videos)}, server latency {args.delay * 1000:.0f} ms, concurrency {args.concurrency}, "
          f"{args.repeats} runs each; machine: {os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f} "
          f"(1 min, during the runs)")
    for logprobs, runs in results.items():
        name = "logprobs on (default)" if logprobs else "logprobs off"
        for r in runs:
            print(f"  {name}: one call alone {r['latency_ms']:.1f} ms -> bound {r['bound']:.0f} calls/s; achieved "
                  f"{r['rate']:.0f} calls/s = {r['ratio']:.3f} of the bound; engine CPU {r['cpu_ms']:.2f} ms/call, "
                  f"test server CPU {r['server_cpu_ms']:.2f} ms/call")
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(f"{name}: median {median['ratio']:.3f} of the Little's-law bound ({median['rate']:.0f} of "
              f"{median['bound']:.0f} calls/s), engine CPU {median['cpu_ms']:.2f} ms/call")
    for logprobs, runs in floors.items():
        median = {key: statistics.median(f[key] for f in runs) for key in runs[0]}
        print(f"bare aiohttp client, same requests and server (logprobs {'on' if logprobs else 'off'}): median "
              f"{median['ratio']:.3f} of the bound ({median['rate']:.0f} calls/s), CPU {median['cpu_ms']:.2f} ms/call")
    for logprobs, times in parts.items():
        size = times.pop("response bytes")
        shown = ", ".join(f"{name} {ms:.3f}" for name, ms in sorted(times.items(), key=lambda kv: -kv[1]))
        print(f"per-call CPU steps, ms ({'logprobs on' if logprobs else 'logprobs off'}, answer {size:.0f} kB): {shown}")


if __name__ == "__main__":
    main()
