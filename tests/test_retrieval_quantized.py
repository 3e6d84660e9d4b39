"""Int8 pre-scoring then exact rescoring gives the exact top-K, including where int8 alone cannot tell rows apart."""

import numpy as np
import pytest

from vibeset.retrieval.quantized import Int8Block


def exact_top(vectors, user, k, extra=None, keep=None, skip=None):
    """Brute force in float64: best first, ties by position."""
    scores = vectors.astype(np.float64) @ user.astype(np.float64)
    if extra is not None:
        scores = scores + extra
    allowed = np.ones(len(vectors), dtype=bool) if keep is None else keep.copy()
    if skip is not None:
        allowed[skip] = False
    positions = np.flatnonzero(allowed)
    order = positions[np.lexsort((positions, -scores[positions]))][:k]
    return order, scores[order]


def assert_same(block, user, k, **masks):
    got, got_scores = block.top(user, k, **masks)
    want, want_scores = exact_top(block.vectors, user, k, **masks)
    assert len(got) == len(want)
    # float32 sums: errors grow with |u| |v| (cancellation), not with the score itself
    tolerance = 1e-5 * (1 + np.linalg.norm(user) * np.linalg.norm(block.vectors, axis=1).max())
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=tolerance)
    differ = got != want  # only float32 rounding may reorder rows whose exact scores are this close
    assert np.all(np.abs(got_scores[differ] - want_scores[differ]) < tolerance)
    return got


@pytest.mark.parametrize("dim", [1, 7, 64])
def test_near_duplicates_int8_cannot_separate_are_ranked_exactly(dim):
    rng = np.random.default_rng(dim)
    base = rng.standard_normal(dim).astype(np.float32)
    vectors = (base + 1e-3 * rng.standard_normal((4000, dim))).astype(np.float32)
    block = Int8Block.quantize(vectors)
    codes = block.codes.T.astype(np.float64) * block.scale[:, None]
    for _ in range(20):
        user = rng.standard_normal(dim).astype(np.float32)
        approximate = np.argsort(-(codes @ user), kind="stable")[:10]
        got = assert_same(block, user, 10)
        if dim > 1:  # the int8 order alone is wrong here: the exact rescoring is what makes it right
            assert not np.array_equal(approximate, got)


def test_exact_ties_keep_position_order():
    rng = np.random.default_rng(1)
    vectors = np.tile(rng.standard_normal((50, 16)).astype(np.float32), (40, 1))  # each vector at 40 positions
    block = Int8Block.quantize(vectors)
    user = rng.standard_normal(16).astype(np.float32)
    got, scores = block.top(user, 25)
    best = int(np.argmax(vectors[:50] @ user))
    assert got[:25].tolist() == [best + 50 * i for i in range(25)]
    assert len(set(scores.tolist())) == 1


def test_masks_extra_scores_and_k_match_brute_force():
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32) * rng.random((3000, 1)).astype(np.float32)
    block = Int8Block.quantize(vectors)
    for _ in range(200):
        user = (rng.standard_normal(32) * rng.choice([0.01, 1.0, 100.0])).astype(np.float32)
        k = int(rng.choice([1, 10, 33, 500, 5000]))
        masks = {}
        if rng.random() < 0.5:
            masks["extra"] = (rng.random(3000) * rng.choice([0.5, 10.0])).astype(np.float32)
        if rng.random() < 0.5:
            masks["keep"] = rng.random(3000) < rng.choice([0.001, 0.3, 0.9])
        if rng.random() < 0.5:
            masks["skip"] = rng.choice(3000, int(rng.integers(1, 400)), replace=False).astype(np.int64)
        assert_same(block, user, k, **masks)


def test_nothing_allowed_is_an_empty_answer_and_zero_rows_quantize():
    block = Int8Block.quantize(np.zeros((5, 4), np.float32))
    rows, scores = block.top(np.ones(4, np.float32), 3, keep=np.zeros(5, bool))
    assert len(rows) == len(scores) == 0
    assert block.top(np.ones(4, np.float32), 3)[0].tolist() == [0, 1, 2]  # all-zero vectors tie at 0
    assert len(Int8Block.quantize(np.zeros((0, 4), np.float32))) == 0


def test_masks_of_the_wrong_size_are_errors_not_memory_reads():
    block = Int8Block.quantize(np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match="one entry per row"):
        block.top(np.ones(4, np.float32), 3, keep=np.ones(4, bool))
    with pytest.raises(ValueError, match="one entry per row"):
        block.top(np.ones(4, np.float32), 3, extra=np.ones(6, np.float32))
    with pytest.raises(IndexError, match="outside the block"):
        block.top(np.ones(4, np.float32), 3, skip=np.array([5]))
