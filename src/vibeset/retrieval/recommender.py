"""The retrieval service object: an opened index, its top-K engines and intent parsing, as JSON.

The HTTP API, the CLI and the offline evaluation all answer through this one class, so the
contract shape (``user``, ``intent``, ``ranker``, ``items``) is produced in one place. Answers are
built as bytes from per-item JSON fragments made once per index version (an item's id, title,
vibes and the version's lineage never change within it), so a request serialises only scores.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import msgspec
import numpy as np

from ..encoder import Encoder
from ..errors import DataError
from .index import AttributeIndex
from .intent import Intent, IntentError, QueryParser, check_length, explicit_intent, infer_intent
from .topk import RestrictedTopK, TopK

#: Two required vibes contradict when they co-occur on under this share of the videos chance predicts.
CONTRADICTION_LIFT = 0.1
#: ... and chance predicts at least this many, so a rare pair's emptiness is not taken as a contradiction.
CONTRADICTION_MIN_EXPECTED = 5.0


class UnknownUserError(DataError):
    """A user id the index has no embedding for."""


#: Compact JSON bytes; ~10x json.dumps's speed with separators (which builds an encoder each call).
_dumps = msgspec.json.encode


class Recommender:
    """Personalized restricted retrieval over one index version (immutable once built)."""

    def __init__(
        self,
        index: AttributeIndex,
        *,
        encoder_factory: Callable[[], Encoder] | None = None,
        threshold: float = 0.3,
        block_min: int = 256,  # serving: contiguous blocks for all but tiny lists (no per-request gather)
    ) -> None:
        self.index = index
        postings = [index.postings(a) for a in range(len(index.attributes))]
        # plain ndarray views of the memory maps: a memmap subclass taxes every numpy call of a request;
        # blocks are views of the saved vectors in posting order, so workers share one copy of them
        self.engine = RestrictedTopK(
            np.asarray(index.item_factors), [p for p, _ in postings], [s for _, s in postings], block_min=block_min,
            posting_vectors=np.asarray(index.posting_vectors("als")),
        )
        self.engines = {name: self.engine if name == "als" else self.engine.with_items(
            np.asarray(index.ranker(name)[0]), np.asarray(index.posting_vectors(name))) for name in index.ranker_names}
        self._users = {name: np.asarray(index.ranker(name)[1]) for name in index.ranker_names}
        self._seen = (np.asarray(index.seen_indptr), np.asarray(index.seen_rows, dtype=np.int64))
        self.item_attributes: list[list[str]] = [[] for _ in range(len(index))]
        for name, (rows, _) in zip(index.attributes, postings):
            for row in rows.tolist():
                self.item_attributes[row].append(name)
        self.defaults = index.defaults
        self._encoder_factory = encoder_factory
        self._threshold = threshold
        self._parser: QueryParser | None = None
        self._names = set(index.attributes)
        self._aliases = index.manifest.get("aliases", {})
        self.lineage = {"index_version": index.version, **index.manifest.get("lineage", {})}
        self._lineage_json = _dumps(self.lineage)
        self._fragments: list[bytes | None] = [None] * len(index)
        self._explicit_cache: dict[str, Intent] = {}  # vibe lists as asked (intents are immutable)

    @property
    def parser(self) -> QueryParser:
        if self._parser is None:
            if self._encoder_factory is None:
                raise DataError("free-text intents need an encoder; pass explicit attributes instead")
            self._parser = QueryParser(self.index.descriptions, self._encoder_factory(), aliases=self._aliases,
                                       threshold=self._threshold)
        return self._parser

    def user_row(self, user: str) -> int:
        row = self.index.user_row(user)
        if row is None:
            raise UnknownUserError(f"unknown user {user!r}: not in this index's interactions ({len(self.index.user_ids)} users)")
        return row

    def intent(self, user: str, text: str | None, *, fallback: bool = False) -> Intent:
        """Comma-separated vibe names ('-name' excludes) are explicit; other text is a query; none is inferred.

        Text naming at least one vibe is read as such a list, so a misspelt name is an error
        naming the closest vibes rather than silently becoming a free-text query. ``fallback``:
        text matching no vibe answers unrestricted (flagged) instead of raising ``IntentError``.
        """
        if text is None or not text.strip():
            return infer_intent(self.index, self.user_row(user))
        check_length(text)
        cached = self._explicit_cache.get(text)
        if cached is not None:
            return cached
        if not self.is_free_text(text):
            tokens = [t.strip() for t in text.split(",") if t.strip()]
            intent = self.explicit([t for t in tokens if t[0] not in "-!"], [t.lstrip("-!") for t in tokens if t[0] in "-!"])
            if len(self._explicit_cache) >= 4096:
                self._explicit_cache.clear()
            self._explicit_cache[text] = intent
            return intent
        return self.check(self.parser.parse(text, fallback=fallback))

    def is_free_text(self, text: str) -> bool:
        """Is ``text`` a query for the encoder, rather than a list naming at least one vibe?"""
        return not any(t.strip().lstrip("-!") in self._names for t in text.split(","))

    def explicit(self, attributes: Sequence[str], excluded: Sequence[str] = ()) -> Intent:
        """An explicit intent, checked for unknown names and contradictions."""
        return self.check(explicit_intent(self.index.attributes, attributes, excluded, self._aliases))

    def check(self, intent: Intent) -> Intent:
        """Raise ``IntentError`` when two required vibes (almost) never go together in this catalog."""
        n = max(len(self.index), 1)
        positions = [self.index.attribute_position(a) for a in intent.attributes]
        for i, a in enumerate(positions):
            for b in positions[i + 1 :]:
                expected = len(self.engine.postings[a]) * len(self.engine.postings[b]) / n
                both = self.engine.overlap(a, b)
                if expected >= CONTRADICTION_MIN_EXPECTED and both < CONTRADICTION_LIFT * expected:
                    names = self.index.attributes[a], self.index.attributes[b]
                    raise IntentError(f"contradictory intent: {names[0]} and {names[1]} go together on {both} videos "
                                      f"where chance predicts {expected:.0f}; ask for one of them", list(names))
        return intent

    def search(
        self, user_row: int, intent: Intent, *, k: int = 10, blend: float | None = None, ranker: str | None = None,
        exclude_seen: bool = True,
    ) -> TopK:
        index = self.index
        name = ranker or self.defaults["ranker"]
        if name not in self.engines:
            raise DataError(f"unknown ranker {name!r}; this index has {', '.join(self.engines)}")
        indptr, rows = self._seen
        seen = rows[indptr[user_row] : indptr[user_row + 1]] if exclude_seen else None
        return self.engines[name].search(
            self._users[name][user_row],
            include=[index.attribute_position(a) for a in intent.attributes],
            exclude=[index.attribute_position(a) for a in intent.excluded],
            seen=seen,
            k=k,
            blend=self.defaults["blend"] if blend is None else blend,
        )

    def recommend_json(
        self, user: str, intent: Intent, *, k: int = 10, blend: float | None = None, ranker: str | None = None
    ) -> bytes:
        """The ``/recommend`` answer for ``user`` under ``intent``, as JSON bytes."""
        ranker = ranker or self.defaults["ranker"]
        blend = self.defaults["blend"] if blend is None else blend
        result = self.search(self.user_row(user), intent, k=k, blend=blend, ranker=ranker)
        items = b",".join(self._fragment(row) + repr(round(float(score), 6)).encode() + b"}"
                          for row, score in zip(result.rows.tolist(), result.scores.tolist()))
        return b"".join((b'{"user":', _dumps(user), b',"intent":', intent.encoded, b',"ranker":', _dumps(ranker),
                         b',"blend":', _dumps(blend), b',"index_version":', _dumps(self.index.version),
                         b',"items":[', items, b"]}"))

    def recommend(self, user: str, intent: Intent, **options: Any) -> dict[str, Any]:
        """``recommend_json`` as a dict (for the CLI, the web UI and tests)."""
        return json.loads(self.recommend_json(user, intent, **options))

    def _fragment(self, row: int) -> bytes:
        """An item's JSON up to its score, made on first use."""
        fragment = self._fragments[row]
        if fragment is None:
            fragment = (b'{"video_id":' + _dumps(self.index.item_ids[row]) + b',"title":' + _dumps(self.index.titles[row])
                        + b',"attributes":' + _dumps(self.item_attributes[row]) + b',"lineage":' + self._lineage_json
                        + b',"score":')
            self._fragments[row] = fragment
        return fragment

    def items(self, rows: Sequence[int], scores: Sequence[float]) -> list[dict[str, Any]]:
        return json.loads(b"[" + b",".join(self._fragment(r) + repr(round(float(s), 6)).encode() + b"}"
                                           for r, s in zip(rows, scores)) + b"]")

    def video(self, video_id: str) -> dict[str, Any] | None:
        """The ``/videos/{id}`` answer: every annotation of the video with its lineage."""
        row = self.index.item_row(video_id)
        if row is None:
            return None
        frame = self.index.video_annotations(video_id)
        attributes = [
            {
                "name": record["attribute"],
                "score": None if np.isnan(record["score"]) else round(float(record["score"]), 6),
                "label": bool(record["label"]),
                "lineage": {
                    "run_id": record["run_id"],
                    "prompt_version": record["prompt_version"],
                    "model": record["model"],
                    "source": record["source"],
                    "taxonomy_version": record["taxonomy_version"],
                },
            }
            for record in frame.to_dict("records")
        ]
        return {"video_id": video_id, "title": self.index.titles[row], "lineage": self.lineage, "attributes": attributes}

    def attributes(self) -> list[dict[str, Any]]:
        n = max(len(self.index), 1)
        return [
            {
                "name": name,
                "description": self.index.descriptions.get(name, ""),
                "videos": len(self.engine.postings[a]),
                "prevalence": round(len(self.engine.postings[a]) / n, 6),
            }
            for a, name in enumerate(self.index.attributes)
        ]
