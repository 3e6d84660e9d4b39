"""Confidence from the model's own probabilities: the label token's logprob, self-report as the fallback,
both kept per row and compared by ``iterate evaluate`` on golden dev (against real local HTTP servers)."""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np
import pytest

from vibeset.annotation import read_annotations
from vibeset.golden import workspace_golden
from vibeset.llm import LLMConfig, read_confidences, run
from vibeset.llm.backend import CallError, TokenLogprob
from vibeset.llm.confidence import label_offsets, label_probabilities
from vibeset.llm.openai_backend import completion_of
from vibeset.workspace import load_workspace

from conftest import REPO, run_cli, write_workspace
from llm_server import LLMServer, answer

NAMES = ["dark", "feel-good"]
TEXT = '{"dark": {"label": true, "confidence": 0.8, "evidence": "a true story"}, "Feel Good": {"confidence": 0.6, "label": false}}'


def _tokens(pieces: list[tuple[str, float, list[tuple[str, float]]]]) -> list[TokenLogprob]:
    return [TokenLogprob(t, lp, tuple(TokenLogprob(a, alp) for a, alp in alts)) for t, lp, alts in pieces]


def _split(text: str, cuts: dict[str, tuple[float, list[tuple[str, float]]]]) -> list[TokenLogprob]:
    """Tokens spelling ``text``: one per character except the marked substrings, which get their logprobs."""
    pieces, i = [], 0
    while i < len(text):
        for piece, (lp, alts) in cuts.items():
            if text.startswith(piece, i):
                pieces.append((piece, lp, alts))
                i += len(piece)
                break
        else:
            pieces.append((text[i], -0.001, []))
            i += 1
    return _tokens(pieces)


def test_label_offsets_find_each_attributes_label_not_evidence_or_key_order() -> None:
    offsets = label_offsets(TEXT, NAMES)
    assert TEXT[offsets["dark"]:].startswith("true, ") and TEXT[offsets["feel-good"]:].startswith("false}")


@pytest.mark.parametrize(
    "cuts, expected",
    [
        # a token per label with both alternatives: P(true) = mass of true / (true + false)
        ({"true,": (math.log(0.7), [("false,", math.log(0.2))]), "false}": (math.log(0.9), [("true}", math.log(0.1))])},
         {"dark": 0.7 / 0.9, "feel-good": 0.1}),
        # no alternatives listed: the rest of the mass is the other answer
        ({"true": (math.log(0.8), []), "false": (math.log(0.6), [])}, {"dark": 0.8, "feel-good": 0.4}),
        # the label spread over tokens that start before it (': tr' + 'ue'), alternatives sharing the prefix
        ({": tr": (math.log(0.5), [(": fa", math.log(0.5)), (": \"", math.log(0.01))]), "false": (math.log(0.99), [])},
         {"dark": 0.5, "feel-good": 0.01}),
    ],
)
def test_label_probabilities_from_token_logprobs(cuts, expected) -> None:
    probabilities = label_probabilities(TEXT, _split(TEXT, cuts), NAMES)
    assert probabilities.keys() == expected.keys()
    for name, value in expected.items():
        assert probabilities[name] == pytest.approx(value, abs=1e-9)


def test_no_logprobs_or_tokens_that_do_not_spell_the_text_give_none() -> None:
    assert label_probabilities(TEXT, None, NAMES) == {}
    assert label_probabilities(TEXT, _tokens([("{", -0.1, [])]), NAMES) == {}
    assert label_probabilities("not json at all", _tokens([("not json at all", -0.1, [])]), NAMES) == {}


def test_a_chat_completion_decodes_into_tokens_and_a_malformed_one_names_the_field() -> None:
    body = {"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "true"},
                                     "logprobs": {"content": [{"token": "true", "logprob": -0.5, "bytes": [116],
                                                               "top_logprobs": [{"token": "false", "logprob": -1}]}]}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}}
    for raw in (json.dumps(body).encode(), json.dumps(body), body):  # HTTP bytes, text, a batch output line
        completion = completion_of(raw)
        assert completion.text == "true" and (completion.input_tokens, completion.output_tokens) == (7, 1)
        assert completion.logprobs == [TokenLogprob("true", -0.5, (TokenLogprob("false", -1.0),))]
    body["choices"][0]["logprobs"]["content"][0]["logprob"] = "high"
    with pytest.raises(CallError, match=r"choices\[0\]\.logprobs\.content\[0\]\.logprob") as err:
        completion_of(json.dumps(body))
    assert err.value.kind == "bad_response" and err.value.retryable
    for empty in (b'{"choices": []}', None):  # no choice; a batch output line without a body
        with pytest.raises(CallError, match="not a chat completion"):
            completion_of(empty)


@pytest.fixture(scope="module")
def dev():
    ws = load_workspace(REPO)
    golden = workspace_golden(ws).split("dev")
    videos = list(ws.catalog.subset(sorted(golden.pairs["video_id"].unique())))
    truth: dict[str, dict[str, bool]] = {}
    titles = {video.video_id: video.title for video in videos}
    for row in golden.pairs.itertuples(index=False):
        truth.setdefault(titles[row.video_id], {})[row.attribute] = bool(row.label)
    return ws, videos, truth


def test_engine_keeps_logprob_and_self_reported_scores_and_falls_back(dev, tmp_path) -> None:
    ws, videos, truth = dev
    config = LLMConfig(concurrency=8, flush_every=10)
    with LLMServer(truth=truth) as server:
        summary = asyncio.run(run(videos[:12], ws.taxonomy, config.backend("openai", "m", server.base_url), config,
                                  tmp_path / "lp"))
        assert summary.annotated == 12 and all(r["logprobs"] is True for r in server.requests)
    labels = read_annotations(tmp_path / "lp").merge(read_confidences(tmp_path / "lp").drop(columns="score"), on=["video_id", "attribute"])
    expected = {(v.video_id, name): answer(ws.taxonomy.names, v.title, truth) for v in videos[:12] for name in [None]}
    for row in labels.itertuples(index=False):
        body, p_true = expected[(row.video_id, None)]
        judgement = body[row.attribute]
        assert row.score_logprob == pytest.approx(p_true[row.attribute], abs=1e-5)  # the label token's probability
        assert row.score == pytest.approx(row.score_logprob, abs=1e-6)  # ... is the score
        belief = judgement["confidence"] if judgement["label"] else 1 - judgement["confidence"]
        assert row.score_self == pytest.approx(belief, abs=1e-6) and row.label == judgement["label"]
    # a server that refuses logprobs: asked again without, self-reported confidence is the score
    one = LLMConfig(concurrency=1)
    with LLMServer(logprobs=False) as server:
        summary = asyncio.run(run(videos[:3], ws.taxonomy, one.backend("openai", "m", server.base_url), one,
                                  tmp_path / "self"))
        assert summary.annotated == 3 and summary.failed == 0
        assert [bool(r.get("logprobs")) for r in server.requests] == [True, False, False, False]
    fallback = read_annotations(tmp_path / "self").merge(read_confidences(tmp_path / "self").drop(columns="score"), on=["video_id", "attribute"])
    assert fallback["score_logprob"].isna().all() and np.allclose(fallback["score"], fallback["score_self"])
    # cached answers keep their label probabilities
    again = LLMConfig(concurrency=8, cache=tmp_path / "lp" / "cache.sqlite")
    with LLMServer(truth=truth) as server:
        replay = asyncio.run(run(videos[:12], ws.taxonomy, again.backend("openai", "m", server.base_url), again,
                                 tmp_path / "replay"))
        assert replay.cache_hits == 12 and server.calls == 0
    assert np.allclose(read_confidences(tmp_path / "replay").sort_values(["video_id", "attribute"])["score_logprob"],
                       read_confidences(tmp_path / "lp").sort_values(["video_id", "attribute"])["score_logprob"])


def test_iterate_evaluate_reports_each_kind_of_confidence_side_by_side(dev, tmp_path) -> None:
    ws, videos, truth = dev
    out = tmp_path / "gdev"
    config = LLMConfig(concurrency=32, flush_every=200)
    with LLMServer(truth=truth) as server:
        summary = asyncio.run(run(videos, ws.taxonomy, config.backend("openai", "m", server.base_url), config, out))
    assert summary.annotated == len(videos)
    toml = write_workspace(tmp_path / "ws", tmp_path / "artifacts")
    result = run_cli("iterate", "evaluate", "--annotator", f"annotations:{out}", "--bootstrap", "50", "--json",
                     workspace=toml)
    assert result.returncode == 0, result.stderr
    kinds = json.loads(result.stdout)["confidence"]
    assert set(kinds) == {"score", "score_self", "score_logprob"}
    assert all(k["pairs"] > 2000 and k["coverage"] == 1.0 for k in kinds.values())
    logprob, self_report = kinds["score_logprob"], kinds["score_self"]
    # the label token's probability ranks videos better than the coarse confidence the model writes down
    assert logprob["micro_auc"] > self_report["micro_auc"] + 0.03, (logprob, self_report)
    assert logprob["micro_auc_ci"][0] > 0.5 and kinds["score"]["micro_auc"] == pytest.approx(logprob["micro_auc"])
    for kind in kinds.values():  # Platt fitted on the other dev folds: never worse than the raw score by much
        assert kind["brier_calibrated"] is not None and kind["brier_calibrated"] <= kind["brier"] + 0.01
    print("confidence AUCs on the test server's data:",
          {name: round(k["micro_auc"], 3) for name, k in kinds.items()})
    table = run_cli("iterate", "evaluate", "--annotator", f"annotations:{out}", "--bootstrap", "20", workspace=toml)
    assert table.returncode == 0 and "logprob" in table.stdout and "self-report" in table.stdout
