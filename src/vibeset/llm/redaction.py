"""Keys out of stored errors: providers echo the key they refused, whole or masked, in error bodies.

Anything that looks like a configured key (the value of any key variable set in the
environment) is replaced before an error is stored, logged or raised: the whole key, any run
of 8 or more of its characters, and a masked echo that keeps its first or last characters
(``sk-abc...wxyz``, ``sk-abc*****wxyz``).
"""

from __future__ import annotations

import os
import re

from .backend import ALL_KEY_VARIABLES

MASK = "[redacted key]"
_TOKEN = re.compile(r"[A-Za-z0-9_\-./+*…]{8,}")
_MASKED = re.compile(r"(.*?)(?:\*+|\.{3,}|…)(.*)")
_MIN_SHARED = 8
_MIN_END = 4


def configured_keys() -> list[str]:
    """The keys set in the environment (ignoring values too short to be keys)."""
    return [value for name in ALL_KEY_VARIABLES if len(value := os.environ.get(name, "")) >= _MIN_SHARED]


def _looks_like(token: str, key: str) -> bool:
    runs = {key[i : i + _MIN_SHARED] for i in range(len(key) - _MIN_SHARED + 1)}
    if any(token[i : i + _MIN_SHARED] in runs for i in range(len(token) - _MIN_SHARED + 1)):
        return True
    masked = _MASKED.fullmatch(token)
    if masked is None:
        return False
    head, tail = masked.group(1), masked.group(2)
    return len(head) >= _MIN_END and key.startswith(head) and key.endswith(tail)


def redact(text: str, keys: list[str] | None = None) -> str:
    """``text`` with every key-like token replaced by ``MASK``."""
    keys = configured_keys() if keys is None else keys
    if not text or not keys:
        return text
    for key in keys:
        text = text.replace(key, MASK)

    def hide(match: re.Match[str]) -> str:
        token = match.group(0)
        return MASK if any(_looks_like(token, key) for key in keys) else token

    return _TOKEN.sub(hide, text)
