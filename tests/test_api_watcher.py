"""The index watcher of a real server: any broken new version is logged and skipped, the last good one
keeps serving, and the next good build is picked up."""

import json
import shutil
import time

import httpx
import pytest

from vibeset.files import atomic_write_text
from vibeset.retrieval.index import POINTER
from vibeset.retrieval.synthetic import synthetic_index

from test_api_swap import serving

SIZE = dict(items=500, users=20, attributes=4)


def _garbage(directory):
    (directory / "manifest.json").write_bytes(b"\x00{not json")


def _not_a_dict(directory):
    (directory / "manifest.json").write_text("[1, 2, 3]")


def _wrong_fields(directory):
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["attributes"] = 7  # valid JSON, nonsense inside
    manifest["rankers"] = {"x": 1}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _truncated_array(directory):
    path = directory / "item_factors.npy"
    path.write_bytes(path.read_bytes()[:100])


def _missing_file(directory):
    (directory / "users.parquet").unlink()


CORRUPTIONS = (_garbage, _not_a_dict, _wrong_fields, _truncated_array, _missing_file)


@pytest.fixture()
def server(tmp_path, monkeypatch):
    monkeypatch.delenv("VIBESET_API_TOKEN", raising=False)
    root = tmp_path / "index"
    first = synthetic_index(**SIZE, seed=0).save(root, keep=20).name
    log = tmp_path / "server.log"
    with serving(root, log, tries=300) as url:
        yield url, root, first, log


def _served(url: str) -> str:
    return httpx.get(f"{url}/healthz", timeout=5).json()["index_version"]


def test_watcher_survives_any_broken_version_and_takes_the_next_good_one(server):
    url, root, first, log = server
    for number, corrupt in enumerate(CORRUPTIONS, start=1):
        bad = f"v0009{number}-broken-{corrupt.__name__.strip('_')}"
        shutil.copytree(root / "versions" / first, root / "versions" / bad)
        corrupt(root / "versions" / bad)
        atomic_write_text(root / POINTER, bad + "\n")
        deadline = time.time() + 10
        while time.time() < deadline and bad not in log.read_text():
            time.sleep(0.1)
        assert bad in log.read_text(), f"{corrupt.__name__}: no log line naming the broken version:\n{log.read_text()}"
        assert _served(url) == first
        answer = httpx.get(f"{url}/recommend", params={"user": "u1", "intent": "a1"}, timeout=5)
        assert answer.status_code == 200 and answer.json()["index_version"] == first
    assert log.read_text().count("cannot be served") == len(CORRUPTIONS)  # once each, not once per poll
    good = synthetic_index(**SIZE, seed=7).save(root, keep=20).name
    deadline = time.time() + 10
    while time.time() < deadline and _served(url) != good:
        time.sleep(0.1)
    assert _served(url) == good
    assert f"now serving index version {good}" in log.read_text()
