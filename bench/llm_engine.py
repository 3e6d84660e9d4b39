"""Run-engine throughput against the local test server (100 ms per call, concurrency 64).

Prints achieved calls/s as a fraction of the Little's-law bound (concurrency / latency, with
the latency of one call measured in the same run as the baseline), engine CPU time per call,
and the cache-hit path in videos/s.

    .venv/bin/python bench/llm_engine.py [--videos 1280] [--delay 0.1] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import os
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vibeset.llm import LLMConfig, Prompt, run
from vibeset.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1280)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    ws = load_workspace(REPO)
    videos = list(ws.catalog)[: args.videos]
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "llm_server.py"), "--delay", str(args.delay)], stdout=subprocess.PIPE, text=True
    )
    try:
        base_url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"
        config = LLMConfig(concurrency=args.concurrency, flush_every=256)
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache.sqlite"
            config = config.model_copy(update={"cache": cache})

            # baseline: the latency of one call made alone, through the same warm client
            latency = asyncio.run(_call_latency(config.backend("openai", "bench", base_url), ws.taxonomy, videos[0]))
            bound = args.concurrency / latency

            cpu, wall, server_cpu = time.process_time(), time.perf_counter(), _cpu_seconds(server.pid)
            summary = asyncio.run(run(videos, ws.taxonomy, config.backend("openai", "bench", base_url), config, Path(tmp) / "a"))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            server_cpu = _cpu_seconds(server.pid) - server_cpu
            rate = summary.calls / wall

            hit_wall = time.perf_counter()
            hits = asyncio.run(run(videos, ws.taxonomy, config.backend("openai", "bench", base_url), config, Path(tmp) / "b"))
            hit_wall = time.perf_counter() - hit_wall
    finally:
        server.terminate()
        server.wait()

    assert summary.annotated == len(videos) and hits.cache_hits == len(videos) and hits.calls == 0
    print(f"videos: {len(videos)}, server latency {args.delay * 1000:.0f} ms, concurrency {args.concurrency}")
    print(f"one call alone, warm client (baseline): {latency * 1000:.1f} ms")
    print(f"Little's-law bound: {bound:.0f} calls/s (ideal {args.concurrency / args.delay:.0f} at exactly {args.delay * 1000:.0f} ms)")
    print(f"achieved: {rate:.0f} calls/s -> {rate / bound:.3f} of the bound ({rate / (args.concurrency / args.delay):.3f} of ideal)")
    print(f"engine CPU per call: {cpu / summary.calls * 1000:.2f} ms (client, parse, cache, Parquet; server in another process)")
    print(f"test server CPU per call: {server_cpu / summary.calls * 1000:.2f} ms; machine: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"cache-hit path: {len(videos) / hit_wall:.0f} videos/s ({hit_wall:.2f} s for {len(videos)})")


if __name__ == "__main__":
    main()
