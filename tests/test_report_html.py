"""`vibeset report`: one self-contained HTML file whose plots are present and which fetches nothing."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import run_cli
from llm_server import LLMServer
from web_workspace import small_workspace

PRICES = """
[llm.prices.test-model]
input = 1.0
output = 4.0
"""


class Document(HTMLParser):
    """Collects element counts, ids and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.ids: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if name in ("href", "src", "xlink:href", "action", "srcset", "data", "poster") and value is not None:
                self.urls.append(value)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, shared_artifacts: Path):
    config = small_workspace(tmp_path_factory.mktemp("report"), shared_artifacts / "embeddings")
    config.write_text(config.read_text() + PRICES)  # the bundled config has an [llm] table
    artifacts = config.parent / "out"
    llm_dir = artifacts / "annotations" / "llm-test"
    with LLMServer() as server:
        done = run_cli("annotate", "--backend", "openai", "--model", "test-model", "--base-url", server.base_url,
                       "--split", "golden-test", "--limit", "12", "--out", str(llm_dir), "--json",
                       workspace=config, VIBESET_LLM_API_KEY="sk-test")
    assert done.returncode == 0, done.stderr
    from vibeset.runs import Lineage, record_run
    from vibeset.workspace import load_workspace

    ws = load_workspace(config)
    for version, f1 in (("v-base", 0.41), ("v-refined", 0.47)):
        record_run(ws, "iterate", lineage=Lineage(prompt_version=version, golden_split="dev"),
                   metrics={"macro_f1": f1, "macro_f1_ci": [f1 - 0.05, f1 + 0.05]}, duration_s=1.5)
    result = run_cli("report", str(llm_dir), "--bootstrap", "50", "--json", workspace=config)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    return Path(summary["out"]), summary, ws


def test_report_has_every_plot(report):
    out, summary, ws = report
    document = Document()
    document.feed(out.read_text(encoding="utf-8"))
    from vibeset.golden import workspace_golden

    attributes = sorted(workspace_golden(ws).split("test").pairs["attribute"].unique())
    expected = {"fig-f1-per-attribute", "fig-mcc-per-attribute", "fig-pr-micro", "fig-agreement", "fig-throughput",
                "fig-cost", "fig-prompt-versions", "fig-shares", *(f"fig-pr-{a}" for a in attributes)}
    assert expected <= set(document.ids), sorted(expected - set(document.ids))
    assert document.tags["svg"] == document.tags["figure"] == summary["figures"] == len(expected)
    assert summary["bytes"] == out.stat().st_size < 1_000_000
    text = out.read_text(encoding="utf-8")
    assert "annotations:" in text and "crowd" in text and "v-refined" in text  # the LLM run was evaluated
    # degrades gracefully: stages that have not run say what produces them
    assert set(summary["missing"]) == {"distillation", "retrieval"}
    assert "vibeset eval-retrieval" in summary["missing"]["retrieval"]


def test_report_is_self_contained(report):
    out, _, _ = report
    document = Document()
    text = out.read_text(encoding="utf-8")
    document.feed(text)
    assert document.tags.get("script", 0) == 0 and document.tags.get("link", 0) == 0 and document.tags.get("img", 0) == 0
    assert document.urls and all(url.startswith("#") for url in document.urls)  # only in-page links
    assert "http://" not in text and "https://" not in text and "url(" not in text and "@import" not in text


def test_report_opens_with_the_verdict_and_greys_thin_vibes(report):
    out, summary, ws = report
    text = out.read_text(encoding="utf-8")
    assert summary["sections"][0] == "verdict"
    verdict = text[text.index('<section id="verdict"'):text.index("</section>")]
    assert "a single human rater" in verdict and "[" in verdict  # with CIs
    assert text.index('id="verdict"') < text.index('id="evaluation"') and text.index('id="verdict"') < text.index('class="toc"')
    from vibeset.golden import workspace_golden

    test = workspace_golden(ws).split("test").pairs
    sizes = test.groupby("attribute").size()
    for attribute, n in sizes.items():  # every per-vibe panel says its n, and is grey below 20
        assert f"{attribute} (n=" in text
        figure = text[text.index(f'id="fig-pr-{attribute}"') - 40:text.index(f'id="fig-pr-{attribute}"')]
        assert ("muted" in figure) == (n < 20), (attribute, n)


def test_report_has_confusion_matrices_and_a_browsable_table(report):
    out, _, ws = report
    text = out.read_text(encoding="utf-8")
    from vibeset.golden import workspace_golden

    test = workspace_golden(ws).split("test").pairs
    confusion = text[text.index('<section id="confusion"'):]
    confusion = confusion[:confusion.index("</section>")]
    assert "TP" in confusion and "FN" in confusion and "annotations:" in confusion  # the LLM run evaluated here
    browse = text[text.index('<table class="browse">'):]
    browse = browse[:browse.index("</table>")]
    assert browse.count("<tr data-vibe=") == len(test)  # every evaluated pair, with its text, ratings and labels
    assert 'class="f-vibe"' in text and 'class="f-kind"' in text
    for attribute in sorted(test["attribute"].unique()):  # CSS-only filters, one rule per vibe
        assert f'option[value="{attribute}"]:checked) tbody tr:not([data-vibe="{attribute}"])' in text


def test_report_shows_the_share_each_annotator_labels(report):
    out, _, _ = report
    text = out.read_text(encoding="utf-8")
    shares = text[text.index('<section id="shares"'):]
    shares = shares[:shares.index("</section>")]
    assert "zero-shot share" in shares and "golden prevalence" in shares
