"""The response cache: SQLite, keyed by everything that determines an answer, holding only successes.

A key hashes (backend identity and parameters, prompt version, video content hash, sample
index). Backend identities never carry secrets, so neither do keys. Only answers that parsed
are stored, so a failure is always retried and never replayed.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ..hashing import content_hash
from .backend import Completion


def cache_key(identity: dict[str, Any], prompt_version: str, video_hash: str, sample: int) -> str:
    return content_hash([identity, prompt_version, video_hash, sample], length=32)


class ResponseCache:
    """A write-ahead-logged SQLite table; safe to share between processes (e.g. shard workers)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
            " input_tokens INTEGER, output_tokens INTEGER, created REAL NOT NULL)"
        )

    def get(self, key: str) -> Completion | None:
        row = self._db.execute("SELECT text, input_tokens, output_tokens FROM responses WHERE key = ?", (key,)).fetchone()
        return Completion(*row) if row else None

    def put(self, key: str, completion: Completion) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
            (key, completion.text, completion.input_tokens, completion.output_tokens, time.time()),
        )

    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
