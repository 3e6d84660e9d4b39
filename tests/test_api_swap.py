"""Atomic index swap under load: a real server, a client hammering /recommend, the index rebuilt twice."""

import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from vibeset.retrieval.index import load_index
from vibeset.retrieval.intent import Intent
from vibeset.retrieval.recommender import Recommender
from vibeset.retrieval.synthetic import synthetic_index

SIZE = dict(items=3000, users=50, attributes=6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(root: Path, log: Path, tries: int) -> Iterator[str]:
    """A real ``vibeset serve`` of the index at ``root`` (output in ``log``); its URL once /healthz answers."""
    port = free_port()
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", "from vibeset.cli import main; main()", "serve", "--index", str(root), "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(tries):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail(f"server did not start: {log.read_text()}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture()
def server(tmp_path, monkeypatch):
    monkeypatch.delenv("VIBESET_API_TOKEN", raising=False)
    root = tmp_path / "index"
    synthetic_index(**SIZE, seed=0).save(root, keep=10)
    with serving(root, tmp_path / "server.log", tries=200) as url:
        yield url, root


def test_swap_under_load_is_atomic(server):
    url, root = server
    answers, stop = [], threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            n = 0
            while not stop.is_set():
                user, attribute = f"u{n % 50}", f"a{n % 6}"
                response = client.get("/recommend", params={"user": user, "intent": attribute, "k": 5})
                answers.append((user, attribute, response.status_code, response.json()))
                n += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        versions = []
        for seed in (1, 2):
            time.sleep(0.4)
            versions.append(synthetic_index(**SIZE, seed=seed).save(root, keep=10).name)
        deadline = time.time() + 10
        while time.time() < deadline and httpx.get(f"{url}/healthz").json()["index_version"] != versions[-1]:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()

    assert all(status == 200 for _, _, status, _ in answers), [a for a in answers if a[2] != 200][:3]
    served = {answer["index_version"] for *_, answer in answers}
    assert versions[-1] in served and len(served) >= 2, served
    recommenders = {v: Recommender(load_index(root, version=v)) for v in served}
    for user, attribute, _, answer in answers:
        expected = recommenders[answer["index_version"]].recommend(user, Intent([attribute]), k=5)
        assert answer["items"] == expected["items"]
