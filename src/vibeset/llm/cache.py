"""The response cache: SQLite, keyed by what determines an answer, holding only successes.

A key hashes the model and its parameters (never the endpoint: a server moved to another port
or host serves the same answers; never a secret), the prompt version, the request's content
(its system and user text, the media it points at and how frames are taken) and the sample
index. Only answers that parsed are stored, so a failure is always retried and never replayed;
with them the label probabilities read from their logprobs (the tokens themselves are not kept).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from ..hashing import content_hash
from .backend import Completion


def cache_key(identity: dict[str, Any], prompt_version: str, request_digest: str, sample: int) -> str:
    return content_hash([identity, prompt_version, request_digest, sample], length=32)


class ResponseCache:
    """A write-ahead-logged SQLite table; safe to share between processes (e.g. shard workers)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
                " input_tokens INTEGER, output_tokens INTEGER, created REAL NOT NULL, probs TEXT)"
            )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
            if "probs" not in columns:  # a cache written before logprob confidence
                self._db.execute("ALTER TABLE responses ADD COLUMN probs TEXT")
        except sqlite3.DatabaseError as err:
            raise ArtifactError(f"{self.path}: the response cache is unreadable ({err}); delete it (answers are "
                                "bought again)") from err

    def get(self, key: str) -> Completion | None:
        row = self._db.execute(
            "SELECT text, input_tokens, output_tokens, probs FROM responses WHERE key = ?", (key,)
        ).fetchone()
        if not row:
            return None
        return Completion(row[0], row[1], row[2], label_probs=json.loads(row[3]) if row[3] else None)

    def put(self, key: str, completion: Completion) -> None:
        probs = json.dumps(dict(completion.label_probs)) if completion.label_probs else None
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (key, completion.text, completion.input_tokens, completion.output_tokens, time.time(), probs),
        )

    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
