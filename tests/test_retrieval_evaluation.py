"""The offline evaluation: query vibes never come from the labels under evaluation; splits, metrics, CIs."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from vibeset.interactions import feedback, leave_last_split, temporal_split
from vibeset.retrieval import CollaborativeModel
from vibeset.retrieval.evaluation import (
    evaluate_split, golden_queries, positives, predicted_queries, replay_ab, with_embeddings,
)
from vibeset.retrieval.synthetic import synthetic_index

TRAIN_POOL, TEST_POOL, USERS = 300, 100, 60


@pytest.fixture(scope="module")
def world():
    """Users who train on videos v0..v299 and are tested on their last 3, drawn from v300..v399 (seen by nobody in train)."""
    rng = np.random.default_rng(0)
    index = synthetic_index(items=TRAIN_POOL + TEST_POOL, users=USERS, attributes=6, prevalence=(0.1, 0.4), seed=4)
    rows = []
    for u in range(USERS):
        history = rng.choice(TRAIN_POOL, 30, replace=False)
        later = rng.choice(np.arange(TRAIN_POOL, TRAIN_POOL + TEST_POOL), 3, replace=False)
        for t, item in enumerate([*history, *later]):  # the held-out ones are all liked
            rows.append((f"u{u}", f"v{item}", 5.0 if t >= 30 else float(rng.integers(1, 6)), t))
    frame = feedback(pd.DataFrame(rows, columns=["user_id", "video_id", "rating", "timestamp"]), explicit=True)
    train, test = leave_last_split(frame, last=3)
    model = CollaborativeModel(factors=8, iterations=3).fit(train, index.item_ids)
    evaluated = with_embeddings(index, model, train)
    golden = {(row, f"a{a}"): bool(rng.random() < 0.3) for row in range(TRAIN_POOL + TEST_POOL) for a in range(6)}
    return evaluated, train, test, golden


def _permute_held_out_labels(index, seed):
    """The same posting-list sizes, but every held-out video's vibes swapped with another held-out video's."""
    rng = np.random.default_rng(seed)
    pool = np.arange(TRAIN_POOL, TRAIN_POOL + TEST_POOL)
    new_row = np.arange(len(index))
    new_row[pool] = rng.permutation(pool)
    offsets, rows, scores = [0], [], []
    for a in range(len(index.attributes)):
        posting, score = index.postings(a)
        moved = new_row[posting]
        order = np.argsort(moved)
        rows.append(moved[order].astype(np.int32))
        scores.append(score[order])
        offsets.append(offsets[-1] + len(order))
    return dataclasses.replace(index, post_offsets=np.asarray(offsets), post_rows=np.concatenate(rows),
                               post_scores=np.concatenate(scores))


def test_query_vibes_never_come_from_the_evaluated_labels(world):
    evaluated, _, test, golden = world
    shuffled = _permute_held_out_labels(evaluated, seed=1)
    events = positives(evaluated, test)
    assert set(events["item"]) <= set(range(TRAIN_POOL, TRAIN_POOL + TEST_POOL)) and len(events) == 3 * USERS
    changed = [a for a in range(6) if not np.array_equal(evaluated.postings(a)[0], shuffled.postings(a)[0])]
    assert changed, "the perturbation must change the labels under evaluation"

    # Both protocols ask the very same queries whatever the held-out videos' labels are ...
    pd.testing.assert_frame_equal(predicted_queries(evaluated, events), predicted_queries(shuffled, events))
    pd.testing.assert_frame_equal(golden_queries(events, golden), golden_queries(events, golden))
    a = evaluate_split(evaluated, test, lookup=golden, blends={}, k=10, n_boot=50)
    b = evaluate_split(shuffled, test, lookup=golden, blends={}, k=10, n_boot=50)
    for protocol in ("predicted", "golden"):
        assert a["protocols"][protocol]["queries"] == b["protocols"][protocol]["queries"] > 0

    # ... while the old protocol (a vibe of the held-out video's own labels) would not: the test has teeth.
    def from_target_labels(index):
        carried = {row: [name for name in index.attributes if row in set(index.postings(index.attribute_position(name))[0])]
                   for row in events["item"]}
        return sorted((u, name) for u, item in events.itertuples(index=False) for name in carried[item])

    assert from_target_labels(evaluated) != from_target_labels(shuffled)


def test_split_report_has_both_protocols_every_system_and_sane_cis(world):
    evaluated, _, test, golden = world
    report = evaluate_split(evaluated, test, lookup=golden, blends={"als": 0.5}, k=10, n_boot=100)
    assert report["users"] == USERS
    for protocol in ("predicted", "golden"):
        systems = report["protocols"][protocol]["systems"]
        assert set(systems) == {"restricted als", "restricted popularity", "unrestricted als"}
        assert report["protocols"][protocol]["setup"]["restricted als"] == {"ranker": "als", "restricted": True, "blend": 0.5}
        for metrics in systems.values():
            for name in ("recall@10", "ndcg@10", "coverage"):
                value, (low, high) = metrics[name]["value"], metrics[name]["ci"]
                assert 0.0 <= low <= value <= high <= 1.0, (protocol, name, metrics[name])
    golden_block = report["protocols"]["golden"]
    expected = sum(sum(golden.get((item, f"a{a}"), False) for a in range(6)) for item in positives(evaluated, test)["item"])
    assert golden_block["queries"] == expected
    # intent precision is judged only by the golden set: every judged result is counted, no more
    assert report["protocols"]["golden"]["systems"]["restricted als"]["intent_precision"]["n"] > 0
    intent = report["intent"]
    assert intent["users"] > 0 and intent["popular_vibe"] in evaluated.attributes
    assert intent["difference"]["ci"][0] <= intent["difference"]["value"] <= intent["difference"]["ci"][1]
    assert intent["inferred_lift"]["value"] > 0


def test_leave_last_split_holds_out_each_users_latest():
    frame = pd.DataFrame({"user_id": ["a"] * 8 + ["b"] * 4, "video_id": [f"v{i}" for i in range(12)],
                          "rating": 4.0, "timestamp": [5, 1, 7, 3, 9, 2, 8, 4, 1, 2, 3, 4]})
    train, test = leave_last_split(feedback(frame, explicit=True), last=2, min_train=3)
    assert sorted(test["video_id"]) == ["v4", "v6"]  # a's two latest; b (4 interactions) stays whole in train
    assert set(train["video_id"]) == {f"v{i}" for i in range(12)} - {"v4", "v6"}
    later = temporal_split(feedback(frame, explicit=True), test_fraction=0.3)[1]
    assert later["timestamp"].min() >= 5


def test_ab_replay_of_identical_labels_has_no_lift(world):
    evaluated, _, test, golden = world
    same = replay_ab(evaluated, evaluated, test, lookup=golden, k=10, n_boot=50)
    assert same["queries"] > 0 and same["intent_precision"]["lift"] == 0.0 and same["protocol"] == "golden"
