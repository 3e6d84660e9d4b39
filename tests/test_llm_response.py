"""Parser tests: a table of messy model answers and what each must become."""

from __future__ import annotations

import json

import pytest

from vibeset.llm.response import FAILURE_KINDS, Judgement, ParseFailure, parse_response

NAMES = ["dark", "feel-good", "thought-provoking"]
GOOD = {name: {"label": i % 2 == 0, "confidence": 0.8, "evidence": f"why {name}"} for i, name in enumerate(NAMES)}
GOOD_TEXT = json.dumps(GOOD)


def _with(**changes: object) -> str:
    data = json.loads(GOOD_TEXT)
    data.update(changes)
    return json.dumps(data)


OK_CASES = [
    ("plain", GOOD_TEXT),
    ("code fence", "```json\n" + json.dumps(GOOD, indent=2) + "\n```"),
    ("prose around", "Sure! Here is my annotation:\n" + GOOD_TEXT + "\nHope this helps."),
    ("trailing commas", json.dumps(GOOD, indent=1).replace('"\n }', '",\n }').replace("}\n}", "},\n}")),
    ("wrapped", json.dumps({"attributes": GOOD})),
    ("key case and separators", json.dumps({"Dark": GOOD["dark"], "feel_good": GOOD["feel-good"], "Thought Provoking": GOOD["thought-provoking"]})),
    ("string booleans and numbers", _with(dark={"label": "true", "confidence": "0.8", "evidence": "why dark"})),
    ("no evidence", _with(dark={"label": True, "confidence": 0.8})),
]

FAIL_CASES = [
    ("empty", "   ", "empty"),
    ("prose only", "This film is dark and feel-good.", "invalid_json"),
    ("truncated", GOOD_TEXT[: len(GOOD_TEXT) // 2], "invalid_json"),
    ("a list", json.dumps([GOOD]), "not_an_object"),
    ("unknown attribute", _with(cosy={"label": True, "confidence": 0.9, "evidence": "x"}), "unknown_attribute"),
    ("missing attribute", json.dumps({k: v for k, v in GOOD.items() if k != "dark"}), "missing_attribute"),
    ("bare boolean", _with(dark=True), "invalid_value"),
    ("label maybe", _with(dark={"label": "maybe", "confidence": 0.5, "evidence": ""}), "invalid_value"),
    ("confidence out of range", _with(dark={"label": True, "confidence": 85, "evidence": ""}), "invalid_value"),
    ("confidence missing", _with(dark={"label": True, "evidence": ""}), "invalid_value"),
    ("confidence NaN", GOOD_TEXT.replace("0.8", "NaN", 1), "invalid_value"),
]


@pytest.mark.parametrize("case,text", OK_CASES, ids=[c[0] for c in OK_CASES])
def test_messy_answers_that_parse(case: str, text: str) -> None:
    parsed = parse_response(text, NAMES)
    assert not isinstance(parsed, ParseFailure), parsed
    assert list(parsed) == NAMES
    assert parsed["dark"].label is True and parsed["feel-good"].label is False
    assert parsed["dark"].confidence == pytest.approx(0.8)
    assert isinstance(parsed["thought-provoking"], Judgement)


@pytest.mark.parametrize("case,text,kind", FAIL_CASES, ids=[c[0] for c in FAIL_CASES])
def test_messy_answers_that_fail_with_a_kind(case: str, text: str, kind: str) -> None:
    parsed = parse_response(text, NAMES)
    assert isinstance(parsed, ParseFailure)
    assert parsed.kind == kind and kind in FAILURE_KINDS
    assert parsed.message
