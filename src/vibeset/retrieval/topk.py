"""Exact restricted top-K: items carrying every requested attribute and none of the excluded, unseen,
ranked by ``user . item`` (+ ``blend`` x mean attribute score).

Filtered ANN loses recall on rare filters and time on common ones; here the plan follows the size
of the smallest requested posting list, and every plan is exact:

- ``gather``: small and mid lists: filter the row ids first, then gather those rows and multiply.
- ``block``: large lists: the list's embeddings as one contiguous block (a view of a saved index's
  vectors in posting order, or a copy made at load), scored in int8 without any gather, masked,
  and the few candidates rescored exactly (``quantized.Int8Block``).
- ``scan``: no attribute requested: one product over all items, then mask.

Single-threaded numpy and one compiled kernel; the caller limits BLAS to one thread per process.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import DataError
from .quantized import Int8Block

_BIT = np.array([1 << b for b in range(8)], dtype=np.uint8)


@dataclass(frozen=True)
class TopK:
    """Result rows (item positions) and their final scores, best first."""

    rows: np.ndarray
    scores: np.ndarray
    plan: str
    candidates: int


class RestrictedTopK:
    """Exact restricted top-K over an item matrix and per-attribute posting lists.

    ``postings[a]``: sorted item rows carrying attribute ``a``; ``scores[a]``: their attribute
    scores. Lists of at least ``block_min`` rows get a contiguous embedding block: a view of
    ``posting_vectors`` (the item vectors in posting order, as a saved index maps them) or else
    a copy made here, largest first, within ``block_budget`` bytes; each with its int8 codes.
    """

    def __init__(
        self,
        item_factors: np.ndarray,
        postings: Sequence[np.ndarray],
        scores: Sequence[np.ndarray],
        *,
        block_min: int = 8192,
        block_budget: int = 2 << 30,
        posting_vectors: np.ndarray | None = None,
    ) -> None:
        if len(postings) != len(scores):
            raise DataError(f"{len(postings)} posting lists but {len(scores)} score lists")
        self.items = item_factors
        self.n_items = int(item_factors.shape[0])
        self.postings = [np.asarray(p, dtype=np.int64) for p in postings]
        self.scores = [np.asarray(s, dtype=np.float32) for s in scores]
        self.bits = np.zeros((len(postings), (self.n_items + 7) // 8), dtype=np.uint8)
        for a, rows in enumerate(self.postings):
            if len(rows) and (rows[0] < 0 or rows[-1] >= self.n_items or np.any(np.diff(rows) <= 0)):
                raise DataError(f"posting list {a} must hold sorted unique rows in [0, {self.n_items})")
            np.bitwise_or.at(self.bits[a], rows >> 3, _BIT[rows & 7])
        self._block_min, self._block_budget = block_min, block_budget
        self.blocks = self._blocks(item_factors, posting_vectors)

    def _blocks(self, item_factors: np.ndarray, posting_vectors: np.ndarray | None) -> dict[int, Int8Block]:
        blocks = self._quantized(item_factors, posting_vectors)
        if blocks:
            next(iter(blocks.values())).compile()  # at load, not in the first request
        return blocks

    def _quantized(self, item_factors: np.ndarray, posting_vectors: np.ndarray | None) -> dict[int, Int8Block]:
        if posting_vectors is not None:
            ends = np.cumsum([len(rows) for rows in self.postings], dtype=np.int64)
            expected = (int(ends[-1]) if len(ends) else 0, item_factors.shape[1])
            if posting_vectors.shape != expected:
                raise DataError(f"vectors in posting order have shape {posting_vectors.shape}, expected {expected}")
            return {a: Int8Block.quantize(posting_vectors[end - len(rows) : end])
                    for a, (rows, end) in enumerate(zip(self.postings, ends)) if len(rows) >= self._block_min}
        blocks: dict[int, Int8Block] = {}
        budget = self._block_budget
        row_bytes = item_factors.shape[1] * 5 + 4  # fp32 vector, int8 codes, scale
        for a in sorted(range(len(self.postings)), key=lambda a: -len(self.postings[a])):
            size = len(self.postings[a])
            if size < self._block_min or size * row_bytes > budget:
                continue
            blocks[a] = Int8Block.quantize(np.take(item_factors, self.postings[a], axis=0))
            budget -= size * row_bytes
        return blocks

    def with_items(self, item_factors: np.ndarray, posting_vectors: np.ndarray | None = None) -> "RestrictedTopK":
        """The same postings and filters over other item vectors (another ranker), sharing the bitmaps."""
        if item_factors.shape[0] != self.n_items:
            raise DataError(f"item vectors have {item_factors.shape[0]} rows, expected {self.n_items}")
        other = copy.copy(self)
        other.items = item_factors
        other.blocks = self._blocks(item_factors, posting_vectors)
        return other

    def plan(self, include: Sequence[int]) -> str:
        if not include:
            return "scan"
        driver = min(include, key=lambda a: len(self.postings[a]))
        return "block" if driver in self.blocks else "gather"

    def overlap(self, a: int, b: int) -> int:
        """How many items carry both attributes (a popcount over their bitmaps)."""
        return int(np.bitwise_count(self.bits[a] & self.bits[b]).sum())

    def _member(self, attribute: int, rows: np.ndarray) -> np.ndarray:
        return (self.bits[attribute][rows >> 3] & _BIT[rows & 7]) != 0

    def search(
        self,
        user: np.ndarray,
        *,
        include: Sequence[int] = (),
        exclude: Sequence[int] = (),
        seen: np.ndarray | None = None,
        k: int = 10,
        blend: float = 0.0,
    ) -> TopK:
        """Top ``k`` rows by ``user . item + blend * mean(scores of include)``; ``seen``: sorted rows to skip."""
        if k < 1:
            raise DataError(f"k must be >= 1, got {k}")
        include = list(dict.fromkeys(include))
        plan = self.plan(include)
        if plan == "scan":
            scores = self.items @ user
            for a in exclude:
                scores[self.postings[a]] = -np.inf
            if seen is not None and len(seen):
                scores[seen] = -np.inf
            return self._top(np.arange(self.n_items), scores, k, plan)

        driver = min(include, key=lambda a: len(self.postings[a]))
        others = [a for a in include if a != driver]
        rows = self.postings[driver]
        keep: np.ndarray | None = None
        for a in others:
            hit = self._member(a, rows)
            keep = hit if keep is None else keep & hit
        for a in exclude:
            miss = ~self._member(a, rows)
            keep = miss if keep is None else keep & miss
        found = None
        if seen is not None and len(seen) and len(rows):
            at = np.minimum(np.searchsorted(rows, seen), len(rows) - 1)
            found = at[rows[at] == seen]  # positions in ``rows`` of the seen items it holds

        if plan == "block":
            extra = blend * self._attribute_score(driver, others, rows, None) if blend else None
            positions, scores = self.blocks[driver].top(user, k, extra, keep, found)
            return TopK(rows=rows[positions], scores=scores, plan=plan, candidates=len(rows))
        if found is not None and len(found):
            keep = np.ones(len(rows), dtype=bool) if keep is None else keep.copy()
            keep[found] = False

        selected = np.flatnonzero(keep) if keep is not None else None
        if selected is not None:
            rows = rows[selected]
        scores = np.take(self.items, rows, axis=0) @ user
        if blend:
            scores += blend * self._attribute_score(driver, others, rows, selected)
        return self._top(rows, scores, k, plan)

    def _attribute_score(
        self, driver: int, others: list[int], rows: np.ndarray, selected: np.ndarray | None
    ) -> np.ndarray:
        total = self.scores[driver] if selected is None else self.scores[driver][selected]
        total = total.astype(np.float32, copy=True)
        for a in others:
            if len(self.postings[a]):  # rows outside the list are masked out by the caller
                at = np.minimum(np.searchsorted(self.postings[a], rows), len(self.postings[a]) - 1)
                total += self.scores[a][at]
        return total / (1 + len(others))

    @staticmethod
    def _top(rows: np.ndarray, scores: np.ndarray, k: int, plan: str) -> TopK:
        n = len(scores)
        part = np.argpartition(scores, n - k)[n - k :] if n > k else np.arange(n)
        part = part[np.isfinite(scores[part])]
        order = np.lexsort((rows[part], -scores[part]))  # best score first, ties by row
        chosen = part[order]
        return TopK(rows=rows[chosen].astype(np.int64), scores=scores[chosen], plan=plan, candidates=n)
