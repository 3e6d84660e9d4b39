"""How long one intent holds a worker.

1. Parse latency of vibe lists, typical free text and the longest text accepted (200 characters,
   4 clauses), uncached and cached, one thread, bundled taxonomy; text beyond the caps is refused
   before any parsing (a 422).
2. A stall check on a real one-worker server over the workspace's index (``--index``): /healthz
   latency alone, then while another client sends a stream of uncached longest free-text intents
   (parsed in a thread, off the event loop). Same run, same server.

    .venv/bin/python bench/http_intent.py [--repeats 50] [--index out/index]
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from vibeset.encoder import MiniLMEncoder  # noqa: E402
from vibeset.retrieval.intent import MAX_CHARS, IntentError, QueryParser  # noqa: E402
from vibeset.workspace import load_workspace  # noqa: E402

WORDS = ("gloomy", "cheerful", "eerie", "tender", "brainy", "zany", "gritty", "wistful", "lush", "brooding", "sunny")


def _timed(parse, texts) -> dict[str, float]:
    times = []
    for text in texts:
        start = time.perf_counter()
        try:
            parse(text)
        except IntentError:
            pass
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "max_ms": round(float(ms.max()), 3)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stall(index: str, seconds: float = 10.0) -> None:
    import httpx

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "vibeset", "serve", "--index", index, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                user = httpx.get(f"{url}/recommend", params={"user": "1"}, timeout=2).json().get("user")
                break
            except (httpx.HTTPError, ValueError):
                time.sleep(0.2)
        healthz = lambda: _latencies(url, seconds / 2)  # noqa: E731
        alone = healthz()
        stop, sent = threading.Event(), [0]

        def flood() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    n = sent[0]
                    text = ", ".join(" ".join(f"{WORDS[(n + j + w) % len(WORDS)]}{n}q{j}{w}" for w in range(4))
                                     for j in range(4))[:200]
                    client.get("/recommend", params={"user": user, "intent": text, "fallback": "true"})
                    sent[0] += 1

        thread = threading.Thread(target=flood)
        thread.start()
        loaded = healthz()
        stop.set()
        thread.join()
        print(f"/healthz alone: {alone}; while {sent[0]} uncached 4-clause intents were parsed: {loaded}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def _latencies(url: str, seconds: float) -> dict[str, float]:
    import httpx

    times, end = [], time.time() + seconds
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.time() < end:
            start = time.perf_counter()
            client.get("/healthz")
            times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def main() -> None:
    parser_args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser_args.add_argument("--repeats", type=int, default=50)
    parser_args.add_argument("--index", help="an index directory to serve for the stall check (skipped without)")
    args = parser_args.parse_args()
    taxonomy = load_workspace(os.environ.get("VIBESET_WORKSPACE", ".")).taxonomy
    parser = QueryParser({a.name: a.describe() for a in taxonomy}, MiniLMEncoder(threads=1),
                         aliases={a.name: a.aliases for a in taxonomy})
    rng = np.random.default_rng(0)

    def longest(i: int) -> str:  # 4 fresh clauses of 4 words, as long as accepted
        return ", ".join(" ".join(f"{rng.choice(WORDS)}{i}x{j}{w}" for w in range(4)) for j in range(4))[:MAX_CHARS]

    cases = {
        "vibe names ('dark,-violent')": ["dark, not violent"] * args.repeats,
        "typical text, uncached": [f"something {rng.choice(WORDS)} {i} but not sappy" for i in range(args.repeats)],
        "typical text, cached": ["something uplifting but not sappy"] * args.repeats,
        f"{MAX_CHARS} chars / 4 clauses, uncached": [longest(i) for i in range(args.repeats)],
        "too long (refused)": ["dark " * 10_000] * args.repeats,
    }
    parser.parse("warm and uplifting", fallback=True)
    for name, texts in cases.items():
        print(f"{name}: {_timed(parser.parse, texts)}")
    if args.index:
        stall(args.index)
    print(f"load average {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
