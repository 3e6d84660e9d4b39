"""Content hashes: versions of taxonomies, prompts, golden sets and texts are hashes of content."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(value: Any, length: int = 12) -> str:
    """Stable short sha256 of a JSON-serialisable value (or of a str / bytes as is)."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:length]


def file_sha256(path: str) -> str:
    """Full sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
