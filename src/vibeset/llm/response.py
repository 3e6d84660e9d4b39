"""Parse, repair and validate a model's answer into one judgement per attribute.

Repairs are limited to form (code fences, prose around the object, trailing commas, a
wrapping key, ``"true"`` for ``true``, name case/separators). Content is never guessed: an
unknown or missing attribute or an invalid value is a ``ParseFailure`` the engine retries and
then records with the raw text.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

FAILURE_KINDS = ("empty", "invalid_json", "not_an_object", "unknown_attribute", "missing_attribute", "invalid_value")
_SEPARATORS = re.compile(r"[\s_]+")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_WRAPPERS = ("attributes", "labels", "annotations", "vibes", "result", "results")
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


@dataclass(frozen=True)
class Judgement:
    """The model's decision on one attribute."""

    label: bool
    confidence: float
    evidence: str


@dataclass(frozen=True)
class ParseFailure:
    """Why an answer was rejected; ``kind`` is one of ``FAILURE_KINDS``."""

    kind: str
    message: str


def _load_object(text: str) -> Any:
    """Decode the JSON object in ``text``, tolerating fences, surrounding prose and trailing commas."""
    if text[:1] == "{":
        try:  # the usual case, structured output: no repair to pay for
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    stripped = _FENCE.sub("", text.strip())
    candidates = [stripped]
    start, end = stripped.find("{"), stripped.rfind("}")
    if start != -1 and end > start:
        candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            try:
                return json.loads(attempt)
            except json.JSONDecodeError:
                continue
    raise ValueError


@functools.lru_cache(maxsize=4096)
def attribute_key(name: str) -> str:
    """Attribute names compare case- and separator-insensitively (cached: it runs per key per answer)."""
    return _SEPARATORS.sub("-", name.strip().lower())


def _label(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _confidence(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def parse_response(text: str, names: Sequence[str]) -> dict[str, Judgement] | ParseFailure:
    """One ``Judgement`` per name in ``names`` (in that order), or why the text cannot give them."""
    if not text or not text.strip():
        return ParseFailure("empty", "the model returned no text")
    try:
        data = _load_object(text)
    except ValueError:
        return ParseFailure("invalid_json", "no JSON object could be decoded")
    if not isinstance(data, dict):
        return ParseFailure("not_an_object", f"expected a JSON object, found {type(data).__name__}")
    known = {attribute_key(name): name for name in names}
    if not any(attribute_key(k) in known for k in data) and len(data) == 1:
        (wrapper, inner), = data.items()
        if attribute_key(wrapper) in _WRAPPERS and isinstance(inner, dict):
            data = inner
    found: dict[str, Any] = {}
    for raw_key, value in data.items():
        name = known.get(attribute_key(str(raw_key)))
        if name is None:
            return ParseFailure("unknown_attribute", f"unknown attribute {raw_key!r}; expected only {list(names)}")
        found[name] = value
    missing = [name for name in names if name not in found]
    if missing:
        return ParseFailure("missing_attribute", f"missing attribute(s) {missing}")
    judgements: dict[str, Judgement] = {}
    for name in names:
        value = found[name]
        if not isinstance(value, dict):
            return ParseFailure("invalid_value", f"{name}: expected an object with label and confidence, found {value!r}")
        label, confidence = _label(value.get("label")), _confidence(value.get("confidence"))
        if label is None:
            return ParseFailure("invalid_value", f"{name}: label must be true or false, found {value.get('label')!r}")
        if confidence is None:
            return ParseFailure(
                "invalid_value", f"{name}: confidence must be a number in [0, 1], found {value.get('confidence')!r}"
            )
        evidence = value.get("evidence", "")
        judgements[name] = Judgement(label, confidence, evidence if isinstance(evidence, str) else json.dumps(evidence))
    return judgements
