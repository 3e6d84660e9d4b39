"""The response cache: SQLite, keyed by what determines an answer, holding only successes.

A key hashes the model and its parameters (never the endpoint: a server moved to another port
or host serves the same answers; never a secret), the prompt version, the request's content
(its system and user text, the media it points at and how frames are taken) and the sample
index. Only answers that parsed are stored, so a failure is always retried and never replayed;
with them the label probabilities read from their logprobs (the tokens themselves are not kept).
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from ..hashing import content_hash
from .backend import Completion


def cache_key(identity: dict[str, Any], prompt_version: str, request_digest: str, sample: int) -> str:
    return content_hash([identity, prompt_version, request_digest, sample], length=32)


_INSERT = "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)"


class ResponseCache:
    """A write-ahead-logged SQLite table; safe to share between processes (e.g. shard workers).

    Answers are written by a writer thread, a transaction per batch of whatever is queued, so
    a disk that stalls (someone's fsync, dirty-page throttling) never stalls the event loop;
    ``close`` writes what is queued. A ``kill -9`` loses only the answers still queued, which
    a resumed run buys again.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
            self._prepare()
        except sqlite3.DatabaseError as err:
            raise ArtifactError(f"{self.path}: the response cache is unreadable ({err}); delete it (answers are "
                                "bought again)") from err
        self._queue: queue.SimpleQueue[tuple | None] = queue.SimpleQueue()
        self._pending: dict[str, tuple] = {}  # queued, not yet written: still answers ``get``
        self._lock = threading.Lock()
        self._error: sqlite3.Error | None = None
        self._writer = threading.Thread(target=self._write, name="vibeset-cache", daemon=True)
        self._writer.start()

    def _prepare(self, attempts: int = 50) -> None:
        """WAL mode and the table. Workers opening one cache together can meet SQLite's immediate
        'database is locked' (switching the journal mode skips the busy timeout): retried."""
        for attempt in range(attempts):
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                # no fsync: a crash of the process loses nothing (the OS has the pages); a power cut
                # may lose recent answers, which are then bought again. fsyncs stalled the event loop.
                self._db.execute("PRAGMA synchronous=OFF")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL,"
                    " input_tokens INTEGER, output_tokens INTEGER, created REAL NOT NULL, probs TEXT)"
                )
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
                if "probs" not in columns:  # a cache written before logprob confidence
                    self._db.execute("ALTER TABLE responses ADD COLUMN probs TEXT")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)

    def _write(self) -> None:
        try:
            self._write_batches()
        except sqlite3.Error as err:  # e.g. a full disk: reported by close()
            self._error = err

    def _write_batches(self) -> None:
        db = self._connect()
        db.execute("PRAGMA synchronous=OFF")
        stop = False
        while not stop:
            rows = [self._queue.get()]
            while True:  # whatever else is queued goes in the same transaction
                try:
                    rows.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in rows
            rows = [row for row in rows if row is not None]
            if rows:
                db.execute("BEGIN")
                db.executemany(_INSERT, rows)
                db.execute("COMMIT")
                with self._lock:
                    for row in rows:
                        if self._pending.get(row[0]) is row:
                            del self._pending[row[0]]
        db.close()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._pending.get(key)
        row = row[1:4] + row[5:] if row else self._db.execute(
            "SELECT text, input_tokens, output_tokens, probs FROM responses WHERE key = ?", (key,)
        ).fetchone()
        if not row:
            return None
        return Completion(row[0], row[1], row[2], label_probs=json.loads(row[3]) if row[3] else None)

    def put(self, key: str, completion: Completion) -> None:
        probs = json.dumps(dict(completion.label_probs)) if completion.label_probs else None
        row = (key, completion.text, completion.input_tokens, completion.output_tokens, time.time(), probs)
        with self._lock:
            self._pending[key] = row
        self._queue.put(row)

    def known(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` have an answer: one query per 500, so a run looks up only keys it will find."""
        with self._lock:
            found = {key for key in keys if key in self._pending}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(row[0] for row in self._db.execute(f"SELECT key FROM responses WHERE key IN ({marks})", chunk))
        return found

    def __contains__(self, key: str) -> bool:
        with self._lock:
            if key in self._pending:
                return True
        return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        self.flush()
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def flush(self) -> None:
        """Wait until every queued answer is written."""
        while self._writer.is_alive():
            with self._lock:
                if not self._pending:
                    return
            time.sleep(0.001)

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join()
        self._db.close()
        if self._error is not None:
            raise ArtifactError(f"{self.path}: answers could not be cached ({self._error}); they are bought again "
                                "by the next run")
