"""The web UI in a real browser (Debian chromium via Playwright) against a real `vibeset serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import VIBESET
from web_workspace import EVIL_ID, EVIL_TITLE, small_workspace

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium ('make browser')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared_artifacts: Path):
    config = small_workspace(tmp_path_factory.mktemp("web"), shared_artifacts / "embeddings")
    port = _free_port()
    env = {**os.environ, "VIBESET_WORKSPACE": str(config)}
    env.pop("VIBESET_API_TOKEN", None)
    proc = subprocess.Popen([*VIBESET, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield base, config.parent / "out"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def test_catalog_search_shows_markup_titles_as_text(server, page):
    base, _ = server
    page.goto(base + "/")
    assert page.url == base + "/ui/"
    page.keyboard.press("g")
    page.keyboard.press("c")  # 'g c' goes to the catalog, '/' focuses its search box
    page.wait_for_url("**/ui/catalog")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("pwned")
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/catalog?q=pwned*")
    link = page.locator("li.result a").first
    assert link.inner_text() == EVIL_TITLE
    link.click()
    page.wait_for_url(f"**/ui/videos/{EVIL_ID}")
    assert page.locator("#video-title").inner_text() == EVIL_TITLE
    assert page.locator("#video-title b").count() == 0
    assert page.locator("main script, main img").count() == 0  # nothing from the catalog became markup
    assert "<img src=x onerror=alert(1)>" in page.locator("main").inner_text()
    assert page.locator("table caption", has_text="zero-shot").count() == 1  # labels with lineage
    assert page.dialogs == []


def test_review_judgement_is_appended(server, page):
    base, artifacts = server
    page.goto(base + "/ui/review?attribute=dark&kind=all")
    assert page.locator("h1").inner_text() == "Golden review"
    rows = page.locator("tr.pair")
    assert rows.count() > 0
    video = rows.first.get_attribute("data-video")
    page.fill("#rater-id", "reviewer.one")
    rows.first.locator("button[value=yes]").click()
    page.wait_for_url("**saved=*")
    assert "Saved judgement reviewer.one:" in page.locator("#saved").inner_text()
    # the rater id is remembered; a second judgement by rating is appended, nothing overwritten
    page.locator("tr.pair").first.locator("select[name=rating]").select_option("2")
    page.locator("tr.pair").first.locator("button[value=rating]").click()
    page.wait_for_url("**saved=*")
    frame = pd.read_csv(artifacts / "judgements" / "reviews.csv", dtype=str)
    assert list(frame.columns[:4]) == ["userId", "movieId", "tag", "rating"]  # the workspace's survey format
    assert frame[["userId", "movieId", "tag", "rating"]].values.tolist() == [
        ["reviewer.one", video, "dark", "5"], ["reviewer.one", video, "dark", "2"]
    ]
    assert not list((artifacts / "judgements").glob("*.tmp"))

    from vibeset.golden import build_golden
    from vibeset.judgements import read_judgements
    from vibeset.reviews import review_judgements
    from vibeset.workspace import load_workspace

    ws = load_workspace(artifacts.parent)
    merged = pd.concat([read_judgements(ws.path(ws.config.judgements.path), ws.config.judgements), review_judgements(ws)])
    golden = build_golden(merged, ws.taxonomy, ws.config.judgements, ws.catalog)
    mine = golden.judgements[golden.judgements["rater"] == "reviewer.one"]
    assert mine[["video_id", "attribute", "rating"]].values.tolist() == [[video, "dark", 3.5]]  # one rater counts once


def test_review_rejects_bad_input_and_cross_site_posts(server):
    base, artifacts = server

    def post(body: bytes, **headers: str) -> tuple[int, str]:
        request = urllib.request.Request(base + "/ui/review", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    before = (artifacts / "judgements" / "reviews.csv").read_bytes() if (artifacts / "judgements" / "reviews.csv").exists() else b""
    status, text = post(b"video_id=1&attribute=dark&rater=12345&verdict=yes")
    assert status == 400 and "must start with a letter" in text
    status, text = post(b"video_id=../../etc/passwd&attribute=dark&rater=eve&verdict=yes")
    assert status == 400 and "not in the catalog" in text
    status, text = post(b"video_id=1&attribute=nope&rater=eve&verdict=rating&rating=9")
    assert status == 400
    status, _ = post(b"video_id=1&attribute=dark&rater=eve&verdict=yes", Origin="http://evil.example")
    assert status == 403
    after = (artifacts / "judgements" / "reviews.csv").read_bytes() if (artifacts / "judgements" / "reviews.csv").exists() else b""
    assert after == before


def test_playground_restricted_beside_unrestricted(server, page):
    base, _ = server
    page.goto(base + "/ui/playground")
    page.fill("#user", "1")
    page.fill("#intent", "dark")
    page.press("#intent", "Enter")
    page.wait_for_url("**/ui/playground?*user=1*")
    assert page.locator("#history li a").count() > 0
    restricted = page.locator("#restricted li")
    assert restricted.count() > 0
    for i in range(restricted.count()):
        assert "dark" in restricted.nth(i).locator(".tag").all_inner_texts()
    assert page.locator("#unrestricted li").count() == 10
    page.goto(base + "/ui/playground?user=1&k=abc")
    assert "k must be a whole number" in page.locator("[role=alert]").inner_text()
    response = page.goto(base + "/ui/playground?user=nobody-here")
    assert response.status == 400 and "unknown user" in page.locator("[role=alert]").inner_text()
