"""Confidence from the model's own probabilities: P(label = true) read off the label's token.

In an answer ``{"dark": {"label": true, "confidence": 0.8, ...}, ...}`` the token that spells
``true`` / ``false`` after each attribute's ``"label":`` carries the model's probability of that
decision, and its top alternatives the probability of the other one. That probability ranks
videos better than the confidence a model writes down (autolabel's finding; measured here by
``vibeset iterate evaluate``). Where a backend returns no logprobs, or the token cannot be
located, the attribute has no logprob score and the self-reported confidence is the fallback.
"""

from __future__ import annotations

import bisect
import math
import re
from itertools import accumulate
from operator import attrgetter
from typing import Sequence

from .backend import TokenLogprob
from .response import attribute_key

# a key opening an object; anchored on the "{" or "," before it (a JSON key follows one), which
# lets the regex skip to candidates instead of trying every string: 3x faster on a 3 kB answer
_OBJECT_KEY = re.compile(r'[{,]\s*"((?:[^"\\]|\\.)*)"\s*:\s*\{')
_LABEL = re.compile(r'"label"\s*:\s*"?(?=[tTfF])')
_SKIP = ' \t\r\n"'
_TOKEN_TEXT = attrgetter("token")


def label_offsets(text: str, names: Sequence[str]) -> dict[str, int]:
    """Character offset of each attribute's label value (its first letter) in a JSON answer."""
    known = {attribute_key(name): name for name in names}
    starts = [(m.start(), known.get(attribute_key(m.group(1)))) for m in _OBJECT_KEY.finditer(text)]
    positions = [start for start, _ in starts]
    offsets: dict[str, int] = {}
    for match in _LABEL.finditer(text):
        index = bisect.bisect_right(positions, match.start()) - 1
        name = starts[index][1] if index >= 0 else None
        if name is not None and name not in offsets:
            offsets[name] = match.end()
    return offsets


def _side(text: str) -> bool | None:
    """True / False for a token continuation that starts spelling true / false (None otherwise)."""
    rest = text.lstrip(_SKIP).lower()
    if rest and "true".startswith(rest[:4]):
        return True
    if rest and "false".startswith(rest[:5]):
        return False
    return None


def _p_true(token: TokenLogprob, at: int) -> float | None:
    """P(true) from one token whose text covers the label value from position ``at``."""
    chosen = token.token
    candidates = {chosen: token.logprob}
    for alternative in token.top_logprobs:
        candidates.setdefault(alternative.token, alternative.logprob)
    mass = {True: 0.0, False: 0.0}
    for text, logprob in candidates.items():
        if text[:at] == chosen[:at] and (side := _side(text[at:])) is not None:
            mass[side] += math.exp(logprob)
    chosen_side = _side(chosen[at:])
    if chosen_side is None:
        return None
    if mass[not chosen_side] == 0.0:  # no alternative listed: the rest of the mass is the other answer
        p = min(1.0, mass[chosen_side])
        return p if chosen_side else 1.0 - p
    return mass[True] / (mass[True] + mass[False])


def label_probabilities(text: str, tokens: Sequence[TokenLogprob] | None, names: Sequence[str]) -> dict[str, float]:
    """P(label = true) per attribute where the tokens spell the answer; {} without logprobs."""
    if not tokens:
        return {}
    pieces = list(map(_TOKEN_TEXT, tokens))  # C-speed: an answer has ~1,000 tokens
    starts = [0, *accumulate(map(len, pieces))]
    if starts[-1] != len(text):
        return {}  # the tokens do not spell this text (a repaired or re-encoded answer): no positions
    probabilities: dict[str, float] = {}
    for name, offset in label_offsets(text, names).items():
        index = bisect.bisect_right(starts, offset) - 1
        if 0 <= index < len(tokens) and text.startswith(pieces[index], starts[index]):
            p = _p_true(tokens[index], offset - starts[index])
            if p is not None:
                probabilities[name] = p
    return probabilities
