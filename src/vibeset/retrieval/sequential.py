"""A small self-attentive sequential recommender (SASRec-style), trained with PyTorch, served through ONNX.

Each user's interactions, in time order, are a sequence; a causal transformer reads the last
``max_len`` of them and its output at the latest position is the user's state ``h``. The score of
video ``i`` as the next one is ``h . E[i]`` with ``E`` the (tied) input item embeddings, so the
model is one more (user vector, item vectors) pair for the exact restricted top-K engine: a
user's state is computed once per index version, and ranking inside a vibe's content set costs
the same as with ALS factors.

Training: full-softmax cross entropy of the true next item at every position of windows of
``max_len + 1`` cut from the end of each user's latest ``history`` interactions, right-padded (so
the causal mask alone keeps padding out of attention). On the bundled ratings a full softmax
beat sampled ones (512 uniform negatives: recall@10 0.017; 512 popularity negatives with logQ
correction: 0.029; full softmax, 5 epochs: 0.050, leave-last-5), so its cost is spent here and
saved by capping each user's history instead.
Only ``fit`` imports torch; the exported ONNX graph maps a (users, max_len) int64 batch of item
ids (0 = padding) to (users, dim) states, and onnxruntime runs it everywhere else.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..artifacts import Artifact, Stamp
from ..errors import DataError, NotFittedError
from ..interactions import chronological
from .index import unit_scale

SASREC = "sasrec"
PARAMS = ("dim", "max_len", "layers", "heads", "dropout", "epochs", "batch", "lr", "history", "seed")


class SequentialModel:
    """SASRec-style next-item model over a fixed list of items (the catalog plus every rated video)."""

    def __init__(
        self,
        *,
        dim: int = 64,
        max_len: int = 50,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.2,
        epochs: int = 5,
        batch: int = 128,
        lr: float = 2e-3,
        history: int = 150,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.max_len = max_len
        self.layers = layers
        self.heads = heads
        self.dropout = dropout
        self.epochs = epochs
        self.batch = batch
        self.lr = lr
        self.history = history
        self.seed = seed

    def params(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in PARAMS}

    def fit(self, interactions: pd.DataFrame, item_ids: Sequence[str], *, threads: int = 2) -> "SequentialModel":
        """Train on ``interactions`` (user_id, video_id, timestamp); ``item_ids`` are the items to rank."""
        from ._sasrec import export_onnx, train

        ordered = chronological(interactions)
        vocabulary = list(dict.fromkeys([*map(str, item_ids), *np.unique(ordered["video_id"].to_numpy(str))]))
        self.vocabulary_ = vocabulary
        code = {video: c + 1 for c, video in enumerate(vocabulary)}  # 0 pads
        codes = ordered["video_id"].map(code).to_numpy(np.int64)
        users = ordered["user_id"].to_numpy(str)
        bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
        sequences = [codes[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        if not sequences or max(len(s) for s in sequences) < 2:
            raise DataError("the sequential ranker needs users with at least two interactions")
        started = time.perf_counter()
        network, self.losses_ = train(sequences, len(vocabulary) + 1, self, threads=threads)
        self.train_seconds_ = time.perf_counter() - started
        self.onnx_ = export_onnx(network, self.max_len)
        self.embeddings_ = network.items.weight.detach().numpy().astype(np.float32)
        self._open()
        return self

    def _open(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session_ = ort.InferenceSession(self.onnx_, options, providers=["CPUExecutionProvider"])
        self.code_ = {video: c + 1 for c, video in enumerate(self.vocabulary_)}

    def check_fitted(self) -> None:
        if not hasattr(self, "session_"):
            raise NotFittedError("SequentialModel is not fitted; call fit(interactions, item_ids) first")

    def item_vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """The embedding of each video (zeros for one the model never saw)."""
        self.check_fitted()
        return self.embeddings_[[self.code_.get(str(v), 0) for v in item_ids]]

    def user_states(self, histories: Sequence[Sequence[str]], *, batch: int = 512) -> np.ndarray:
        """One state per history (video ids, oldest first; unknown videos are skipped)."""
        self.check_fitted()
        out = np.zeros((len(histories), self.dim), dtype=np.float32)
        for start in range(0, len(histories), batch):
            chunk = histories[start : start + batch]
            seq = np.zeros((len(chunk), self.max_len), dtype=np.int64)
            for row, history in enumerate(chunk):
                ids = [c for c in (self.code_.get(str(v)) for v in history) if c][-self.max_len :]
                seq[row, : len(ids)] = ids
            out[start : start + len(chunk)] = self.session_.run(None, {"items": seq})[0]
        return out


def histories(interactions: pd.DataFrame, user_ids: Sequence[str]) -> list[list[str]]:
    """Each user's video ids in time order (empty for users without interactions)."""
    ordered = chronological(interactions)
    grouped = ordered.groupby("user_id", sort=False)["video_id"].agg(list)
    return [list(grouped.get(str(user), [])) for user in user_ids]


def sequential_vectors(
    model: SequentialModel, interactions: pd.DataFrame, user_ids: Sequence[str], item_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(item vectors, user states) for the index: states from each user's history in ``interactions``."""
    items = model.item_vectors(item_ids)
    return items, unit_scale(items, model.user_states(histories(interactions, user_ids)))


def save_sequential(model: SequentialModel, artifact: Artifact, stamp: Stamp, meta: dict | None = None) -> None:
    """Write the ``ranker`` artifact: the ONNX graph, its vocabulary and the item embeddings."""
    model.check_fitted()
    stamp.meta = {**model.params(), "items": len(model.vocabulary_), "train_seconds": round(model.train_seconds_, 1),
                  "final_loss": round(float(model.losses_[-1]), 4), **(meta or {})}
    with artifact.replace(stamp) as staging:
        (staging / "sasrec.onnx").write_bytes(model.onnx_)
        pq.write_table(pa.table({"video_id": model.vocabulary_}), staging / "vocabulary.parquet")
        np.save(staging / "embeddings.npy", model.embeddings_, allow_pickle=False)


def load_sequential(artifact: Artifact) -> SequentialModel:
    """The fitted model of a ``ranker`` artifact (no torch needed); a corrupt file is an error naming it."""
    meta = artifact.complete_manifest().meta
    model = SequentialModel(**{k: meta[k] for k in PARAMS if k in meta})
    model.vocabulary_ = artifact.read("vocabulary.parquet", pq.read_table).column("video_id").to_pylist()
    model.onnx_ = artifact.read("sasrec.onnx", Path.read_bytes)
    with artifact.reading(artifact.path / "sasrec.onnx"):
        model._open()
    model.embeddings_ = artifact.read("embeddings.npy", lambda p: np.load(p, allow_pickle=False))
    expected = (len(model.vocabulary_) + 1, model.dim)
    if model.embeddings_.shape != expected:
        raise artifact.error(artifact.path / "embeddings.npy", f"shape {model.embeddings_.shape}, expected {expected}")
    return model
