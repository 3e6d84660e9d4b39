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
    header = page.locator("#matrix thead th").all_inner_texts()
    assert header[:2] == ["vibe", "raters"] and "zero-shot" in header  # one vibe x annotator matrix
    assert page.locator("#matrix tbody tr").count() == 26
    assert page.locator("#lineage li strong").all_inner_texts() == ["zero-shot", "served index"]  # lineage once
    assert page.dialogs == []


def _reviews(artifacts: Path) -> pd.DataFrame:
    return pd.read_csv(artifacts / "judgements" / "reviews.csv", dtype=str, keep_default_na=False)


def _press(page, key: str) -> None:
    """Press a review key and wait for the page it leads to."""
    before = page.url
    page.keyboard.press(key)
    page.wait_for_function("url => window.location.href !== url", arg=before)
    page.wait_for_load_state("load")


def _counter(page) -> tuple[int, int]:
    return int(page.locator("#done").inner_text()), int(page.locator("#left").inner_text().replace(",", ""))


def test_review_queue_keys_progress_skip_and_undo(server, page):
    base, artifacts = server
    page.goto(base + "/ui/review")
    assert page.locator("#pair").count() == 0  # nothing to judge before saying who you are
    page.fill("#rater", "kbd.tester")
    page.press("#rater", "Enter")
    page.wait_for_url("**rater=kbd.tester*")
    assert page.locator("#judge select, #judge [checked], #judge [selected]").count() == 0  # no default value
    done, left = _counter(page)
    assert done == 0 and left > 100
    first = (page.locator("#pair").get_attribute("data-video"), page.locator("#pair").get_attribute("data-attribute"))
    _press(page, "y")  # auto-advance: the next pair, this one's agreement shown
    assert _counter(page) == (1, left - 1)
    assert "You rated" in page.locator("#last").inner_text() and first[1] in page.locator("#last").inner_text()
    second = (page.locator("#pair").get_attribute("data-video"), page.locator("#pair").get_attribute("data-attribute"))
    assert second != first
    _press(page, "3")
    assert _counter(page) == (2, left - 2)
    third = page.locator("#pair").get_attribute("data-video"), page.locator("#pair").get_attribute("data-attribute")
    _press(page, "s")  # skip: nothing recorded, another pair
    assert _counter(page) == (2, left - 2)
    assert (page.locator("#pair").get_attribute("data-video"), page.locator("#pair").get_attribute("data-attribute")) != third
    _press(page, "u")  # undo the 3: that pair comes back
    assert "undid your rating 3" in page.locator("#message").inner_text()
    assert (page.locator("#pair").get_attribute("data-video"), page.locator("#pair").get_attribute("data-attribute")) == second
    assert _counter(page)[0] == 1
    rows = _reviews(artifacts)
    mine = rows[rows["userId"] == "kbd.tester"]
    assert mine[["movieId", "tag", "rating", "source"]].values.tolist() == [
        [first[0], first[1], "5", "web-review"], [second[0], second[1], "3", "web-review"],
        [second[0], second[1], "3", "web-undo"]]
    assert mine["undoes"].iloc[2] == mine["review_id"].iloc[1]  # append-only: the undo names what it retracts
    assert not list((artifacts / "judgements").glob("*.tmp"))
    assert page.dialogs == []


def test_a_new_video_is_judged_and_joins_the_next_golden_build(server, page):
    base, artifacts = server
    from vibeset.pipeline import run_stage
    from vibeset.artifacts import artifacts_of
    from vibeset.workspace import load_workspace

    from vibeset.golden import workspace_golden

    ws = load_workspace(artifacts.parent)
    judged_before = set(workspace_golden(ws).pairs["video_id"])  # no judgement of it maps to a vibe
    page.goto(base + "/ui/review?rater=newcomer&kind=new")
    video, attribute = page.locator("#pair").get_attribute("data-video"), page.locator("#pair").get_attribute("data-attribute")
    assert video not in judged_before and "nobody has judged this video" in page.locator(".why").inner_text()
    _press(page, "n")
    assert "none yet: yours is the first judgement" in page.locator("#last").inner_text()
    run_stage(ws, "golden", force=False)  # the reviews file is one of the golden stage's sources
    golden = artifacts_of(ws).get("golden")
    pairs = golden.read("pairs.parquet", pd.read_parquet)
    judgements = golden.read("judgements.parquet", pd.read_parquet)
    assert ((pairs["video_id"] == video) & (pairs["attribute"] == attribute)).sum() == 1
    mine = judgements[(judgements["video_id"] == video) & (judgements["attribute"] == attribute)]
    assert mine[["rater", "rating"]].values.tolist() == [["review:newcomer", 1.0]]


def test_web_raters_never_merge_with_survey_raters(server, page):
    base, artifacts = server
    from vibeset.golden import workspace_golden
    from vibeset.workspace import load_workspace

    ws = load_workspace(artifacts.parent)
    golden = workspace_golden(ws)
    rater, video, attribute = golden.judgements.iloc[0][["rater", "video_id", "attribute"]]
    before = golden.pairs.set_index(["video_id", "attribute"]).loc[(video, attribute), "n_raters"]
    page.goto(base + f"/ui/review?rater={rater}&video={video}&pair_attribute={attribute}")  # a survey rater's id, numeric
    _press(page, "5")
    others = page.locator("#last").inner_text()
    assert f"{rater} " in others  # the survey rater is shown as another rater, not as you
    after = workspace_golden(ws)
    assert after.pairs.set_index(["video_id", "attribute"]).loc[(video, attribute), "n_raters"] == before + 1
    raters = set(after.judgements.loc[(after.judgements["video_id"] == video) & (after.judgements["attribute"] == attribute), "rater"])
    assert {rater, f"review:{rater}"} <= raters
    assert "Your agreement so far" in page.locator("#agreement").inner_text()


def test_review_filters_by_vibe_annotator_and_error_type(server, page):
    base, _ = server
    page.goto(base + "/ui/review?rater=filters&kind=fp&annotator=zero-shot&attribute=dark")
    assert page.locator("#pair").get_attribute("data-attribute") == "dark"
    fp_left = _counter(page)[1]
    page.goto(base + "/ui/review?rater=filters&kind=errors&annotator=zero-shot&attribute=dark")
    assert _counter(page)[1] >= fp_left > 0
    page.goto(base + "/ui/review?rater=filters&kind=positive&annotator=zero-shot&attribute=dark")
    assert page.locator("#pair").get_attribute("data-attribute") == "dark"


def test_review_rejects_bad_input_and_cross_site_posts(server):
    base, artifacts = server

    def post(body: bytes, path: str = "/ui/review", **headers: str) -> tuple[int, str]:
        request = urllib.request.Request(base + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    reviews = artifacts / "judgements" / "reviews.csv"
    before = reviews.read_bytes() if reviews.exists() else b""
    status, text = post(b"video_id=1&pair_attribute=dark&rater=../x&verdict=yes")
    assert status == 400 and "rater id" in text
    status, text = post(b"video_id=../../etc/passwd&pair_attribute=dark&rater=eve&verdict=yes")
    assert status == 400 and "not in the catalog" in text
    status, text = post(b"video_id=1&pair_attribute=nope&rater=eve&rating=9")
    assert status == 400
    status, text = post(b"video_id=1&pair_attribute=dark&rater=eve")
    assert status == 400 and "there is no default" in text
    status, _ = post(b"video_id=1&pair_attribute=dark&rater=eve&verdict=yes", Origin="http://evil.example")
    assert status == 403
    status, _ = post(b"rater=eve", "/ui/review/undo", Origin="http://evil.example")
    assert status == 403
    after = reviews.read_bytes() if reviews.exists() else b""
    assert after == before


def test_catalog_filters_by_vibe_annotator_and_disagreement(server, page):
    base, _ = server
    page.goto(base + "/ui/catalog?vibe=dark&annotator=zero-shot")
    results = page.locator("li.result")
    assert results.count() > 0
    for i in range(results.count()):
        assert "dark" in results.nth(i).locator(".tag.on").all_inner_texts()
    page.goto(base + "/ui/catalog")
    total = int(page.locator("#count").inner_text().split()[0].replace(",", ""))
    page.select_option("#disagreement", "humans")
    page.click("form[role=search] button")
    page.wait_for_url("**disagreement=humans*")
    disputed = int(page.locator("#count").inner_text().split()[0].replace(",", ""))
    assert 0 < disputed < total


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
