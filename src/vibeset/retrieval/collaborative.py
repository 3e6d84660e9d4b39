"""Collaborative user/item embeddings from ratings (implicit ALS), with cold-start items projected in.

Ratings become implicit feedback: every rating is an interaction, its confidence grows with the
rating (``1 + alpha * (rating - low) / (high - low)``), so a 5-star watch counts more than a
1-star one. Items without ratings get their text embedding mapped into the factor space by a
ridge regression fitted on the warm items, so they can still be retrieved.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from ..artifacts import Artifact, Stamp
from ..errors import DataError, NotFittedError


class CollaborativeModel:
    """ALS factors for users and for a fixed list of items (the catalog), cold items included."""

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        ridge: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.ridge = ridge
        self.seed = seed

    def fit(
        self, interactions: pd.DataFrame, item_ids: Sequence[str], content: np.ndarray | None = None
    ) -> "CollaborativeModel":
        """Fit on ``interactions`` (user_id, video_id, rating); embed every id of ``item_ids``.

        ``content``: one text embedding per ``item_ids`` row, used for cold items; without it
        cold items get zero vectors (never retrieved ahead of warm ones with positive scores).
        """
        from implicit.cpu.als import AlternatingLeastSquares

        item_ids = [str(v) for v in item_ids]
        if content is not None and len(content) != len(item_ids):
            raise DataError(f"content has {len(content)} rows, expected one per item ({len(item_ids)})")
        users, user_codes = np.unique(interactions["user_id"].to_numpy(str), return_inverse=True)
        # Train on every rated video (ratings of videos outside the catalog still shape user taste).
        videos, video_codes = np.unique(interactions["video_id"].to_numpy(str), return_inverse=True)
        rating = interactions["rating"].to_numpy(np.float64)
        low, high = float(rating.min()), float(rating.max())
        confidence = 1.0 + self.alpha * ((rating - low) / (high - low) if high > low else np.ones_like(rating))
        matrix = sp.csr_matrix(
            (confidence.astype(np.float32), (user_codes, video_codes)), shape=(len(users), len(videos))
        )
        matrix.sum_duplicates()
        with threadpool_limits(1, "blas"):  # implicit's own advice: its threads, not BLAS's
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=1.0,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=1,
            )
            model.fit(matrix, show_progress=False)
        trained = np.asarray(model.item_factors, dtype=np.float32)
        position = {video: row for row, video in enumerate(videos)}
        warm_rows = np.array([position.get(v, -1) for v in item_ids], dtype=np.int64)
        warm = warm_rows >= 0
        item_factors = np.zeros((len(item_ids), self.factors), dtype=np.float32)
        item_factors[warm] = trained[warm_rows[warm]]
        self.projection_r2_ = float("nan")
        if content is not None and (~warm).any() and warm.sum() >= 2:
            ridge = Ridge(alpha=self.ridge).fit(content[warm], item_factors[warm])
            self.projection_r2_ = float(ridge.score(content[warm], item_factors[warm]))
            item_factors[~warm] = ridge.predict(content[~warm]).astype(np.float32)
        counts = np.bincount(video_codes, minlength=len(videos))
        popularity = np.zeros(len(item_ids), dtype=np.float32)
        popularity[warm] = counts[warm_rows[warm]]
        self.user_ids_ = [str(u) for u in users]
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_ids_ = item_ids
        self.item_factors_ = item_factors
        self.cold_ = ~warm
        self.popularity_ = popularity
        return self

    def check_fitted(self) -> None:
        if not hasattr(self, "item_factors_"):
            raise NotFittedError("CollaborativeModel is not fitted; call fit(interactions, item_ids) first")

    def params(self) -> dict[str, float | int]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "ridge": self.ridge,
            "seed": self.seed,
        }


def save_collaborative(model: CollaborativeModel, artifact: Artifact, stamp: Stamp) -> None:
    """Write a fitted model as the ``cf`` artifact (``.npy`` factors, Parquet ids; no pickle)."""
    model.check_fitted()
    r2 = model.projection_r2_
    stamp.meta = {**model.params(), "items": len(model.item_ids_), "users": len(model.user_ids_),
                  "cold_items": int(model.cold_.sum()), "projection_r2": None if r2 != r2 else r2}
    with artifact.replace(stamp) as staging:
        np.save(staging / "item_factors.npy", model.item_factors_, allow_pickle=False)
        np.save(staging / "user_factors.npy", model.user_factors_, allow_pickle=False)
        pq.write_table(pa.table({"video_id": model.item_ids_, "cold": model.cold_, "popularity": model.popularity_}),
                       staging / "items.parquet")
        pq.write_table(pa.table({"user_id": model.user_ids_}), staging / "users.parquet")


def load_collaborative(artifact: Artifact) -> CollaborativeModel:
    """The fitted model of a ``cf`` artifact; a missing or corrupt file is an error naming it."""
    meta = artifact.complete_manifest().meta
    model = CollaborativeModel(**{k: meta[k] for k in ("factors", "regularization", "alpha", "iterations", "ridge", "seed")})
    items = artifact.read("items.parquet", pq.read_table)
    model.item_ids_ = items.column("video_id").to_pylist()
    model.cold_ = items.column("cold").to_numpy(zero_copy_only=False).astype(bool)
    model.popularity_ = items.column("popularity").to_numpy(zero_copy_only=False).astype(np.float32)
    model.user_ids_ = artifact.read("users.parquet", pq.read_table).column("user_id").to_pylist()
    model.item_factors_ = artifact.read("item_factors.npy", lambda p: np.load(p, allow_pickle=False))
    model.user_factors_ = artifact.read("user_factors.npy", lambda p: np.load(p, allow_pickle=False))
    model.projection_r2_ = float("nan") if meta.get("projection_r2") is None else float(meta["projection_r2"])
    shapes = (model.item_factors_.shape, model.user_factors_.shape)
    if shapes[0] != (len(model.item_ids_), model.factors) or shapes[1] != (len(model.user_ids_), model.factors):
        raise artifact.error(artifact.path, f"factor shapes {shapes} do not match {len(model.item_ids_)} items, "
                             f"{len(model.user_ids_)} users, {model.factors} factors")
    return model
