"""Exactness of restricted top-K against brute force, over every plan."""

import numpy as np
import pytest

from vibeset.errors import DataError
from vibeset.retrieval.topk import RestrictedTopK


def brute_force(items, postings, scores, user, include, exclude, seen, k, blend):
    n = len(items)
    allowed = np.ones(n, dtype=bool)
    attr = np.zeros(n, dtype=np.float64)
    for a in include:
        member = np.zeros(n, dtype=bool)
        member[postings[a]] = True
        allowed &= member
        dense = np.zeros(n)
        dense[postings[a]] = scores[a]
        attr += dense
    for a in exclude:
        allowed[postings[a]] = False
    if seen is not None:
        allowed[seen] = False
    total = items.astype(np.float64) @ user + (blend * attr / len(include) if include else 0.0)
    rows = np.flatnonzero(allowed)
    order = rows[np.lexsort((rows, -total[rows]))][:k]
    return order, total[order]


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    n, d = 5000, 16
    items = rng.standard_normal((n, d)).astype(np.float32)
    prevalence = [0.001, 0.004, 0.02, 0.1, 0.3, 0.6, 0.0]
    postings = [np.sort(rng.choice(n, int(n * p), replace=False)) for p in prevalence]
    scores = [rng.random(len(p)).astype(np.float32) for p in postings]
    engine = RestrictedTopK(items, postings, scores, block_min=500)  # lists >= 500 rows get blocks
    return rng, items, postings, scores, engine


def test_all_plans_are_exercised(world):
    _, _, _, _, engine = world
    assert {engine.plan([0]), engine.plan([4]), engine.plan([])} == {"gather", "block", "scan"}


def test_random_queries_match_brute_force(world):
    rng, items, postings, scores, engine = world
    n_attr = len(postings)
    plans = set()
    for _ in range(400):
        user = rng.standard_normal(items.shape[1]).astype(np.float32)
        include = list(rng.choice(n_attr, rng.integers(0, 3), replace=False))
        exclude = [a for a in rng.choice(n_attr, rng.integers(0, 2), replace=False) if a not in include]
        seen = np.sort(rng.choice(len(items), rng.integers(0, 300), replace=False)) if rng.random() < 0.7 else None
        k = int(rng.choice([1, 5, 10, 100, 3000]))
        blend = float(rng.choice([0.0, 0.0, 0.5, 2.0]))
        got = engine.search(user, include=include, exclude=exclude, seen=seen, k=k, blend=blend)
        plans.add(got.plan)
        want_rows, want_scores = brute_force(items, postings, scores, user, include, exclude, seen, k, blend)
        assert len(got.rows) == len(want_rows)
        np.testing.assert_allclose(got.scores, want_scores, rtol=1e-4, atol=1e-4)
        # Same rows except where float32 rounding reorders near-ties.
        differ = got.rows != want_rows
        assert np.all(np.abs(got.scores[differ] - want_scores[differ]) < 1e-4)
        # Every result satisfies the restriction.
        for row in got.rows:
            assert all(row in set(postings[a].tolist()) for a in include)
            assert not any(row in set(postings[a].tolist()) for a in exclude)
            assert seen is None or row not in set(seen.tolist())
    assert plans == {"gather", "block", "scan"}


def test_empty_restriction_returns_nothing(world):
    _, items, _, _, engine = world
    got = engine.search(np.ones(items.shape[1], np.float32), include=[6], k=10)
    assert len(got.rows) == 0


def test_rejects_bad_input(world):
    _, items, postings, scores, engine = world
    with pytest.raises(DataError, match="k must be >= 1"):
        engine.search(np.ones(items.shape[1], np.float32), include=[0], k=0)
    with pytest.raises(DataError, match="sorted unique rows"):
        RestrictedTopK(items, [np.array([3, 2])], [np.ones(2, np.float32)])
