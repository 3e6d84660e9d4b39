"""The retrieval service object: an opened index, its top-K engine and intent parsing, as JSON.

The HTTP API, the CLI and the offline evaluation all answer through this one class, so the
contract shape (``user``, ``intent``, ``items``) is produced in one place.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..encoder import Encoder
from ..errors import DataError
from .index import AttributeIndex
from .intent import Intent, QueryParser, explicit_intent, infer_intent
from .topk import RestrictedTopK, TopK


class UnknownUserError(DataError):
    """A user id the index has no embedding for."""


class Recommender:
    """Personalized restricted retrieval over one index version (immutable once built)."""

    def __init__(
        self,
        index: AttributeIndex,
        *,
        encoder_factory: Callable[[], Encoder] | None = None,
        threshold: float = 0.3,
        block_min: int = 8192,
    ) -> None:
        self.index = index
        postings = [index.postings(a) for a in range(len(index.attributes))]
        self.engine = RestrictedTopK(
            index.item_factors, [p for p, _ in postings], [s for _, s in postings], block_min=block_min
        )
        self.item_attributes: list[list[str]] = [[] for _ in range(len(index))]
        for name, (rows, _) in zip(index.attributes, postings):
            for row in rows.tolist():
                self.item_attributes[row].append(name)
        self._encoder_factory = encoder_factory
        self._threshold = threshold
        self._parser: QueryParser | None = None
        self.lineage = {"index_version": index.version, **index.manifest.get("lineage", {})}

    @property
    def parser(self) -> QueryParser:
        if self._parser is None:
            if self._encoder_factory is None:
                raise DataError("free-text intents need an encoder; pass explicit attributes instead")
            self._parser = QueryParser(
                self.index.descriptions,
                self._encoder_factory(),
                aliases=self.index.manifest.get("aliases", {}),
                threshold=self._threshold,
            )
        return self._parser

    def user_row(self, user: str) -> int:
        row = self.index.user_row(user)
        if row is None:
            raise UnknownUserError(f"unknown user {user!r}: not in this index's interactions ({len(self.index.user_ids)} users)")
        return row

    def intent(self, user: str, text: str | None) -> Intent:
        """Comma-separated attribute names ('-name' excludes) are explicit; other text is a query; none is inferred.

        Text naming at least one attribute is read as such a list, so a misspelt name is an
        error rather than silently becoming a free-text query.
        """
        if text is None or not text.strip():
            return infer_intent(self.index, self.user_row(user))
        tokens = [t.strip() for t in text.split(",") if t.strip()]
        names = set(self.index.attributes)
        if any(t.lstrip("-!") in names for t in tokens):  # a list naming attributes: unknown names are errors
            return explicit_intent(
                self.index.attributes,
                [t for t in tokens if t[0] not in "-!"],
                [t.lstrip("-!") for t in tokens if t[0] in "-!"],
            )
        return self.parser.parse(text)

    def search(self, user_row: int, intent: Intent, *, k: int = 10, blend: float = 0.0, exclude_seen: bool = True) -> TopK:
        index = self.index
        seen = np.asarray(index.seen(user_row)[0], dtype=np.int64) if exclude_seen else None
        return self.engine.search(
            index.user_factors[user_row],
            include=[index.attribute_position(a) for a in intent.attributes],
            exclude=[index.attribute_position(a) for a in intent.excluded],
            seen=seen,
            k=k,
            blend=blend,
        )

    def recommend(self, user: str, intent: Intent, *, k: int = 10, blend: float = 0.0) -> dict[str, Any]:
        """The ``/recommend`` answer for ``user`` under ``intent``."""
        result = self.search(self.user_row(user), intent, k=k, blend=blend)
        return {
            "user": user,
            "intent": intent.to_json(),
            "items": self.items(result.rows.tolist(), result.scores.tolist()),
            "index_version": self.index.version,
        }

    def items(self, rows: Sequence[int], scores: Sequence[float]) -> list[dict[str, Any]]:
        index = self.index
        return [
            {
                "video_id": index.item_ids[row],
                "title": index.titles[row],
                "score": round(score, 6),
                "attributes": self.item_attributes[row],
                "lineage": self.lineage,
            }
            for row, score in zip(rows, scores)
        ]

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
