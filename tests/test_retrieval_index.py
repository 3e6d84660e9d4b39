"""Index persistence (versions, CURRENT pointer, memory maps), intent parsing, inferred intent, evaluation."""

import numpy as np
import pandas as pd
import pytest

from vibeset.encoder import MiniLMEncoder
from vibeset.errors import DataError, UnknownAttributeError
from vibeset.retrieval import CollaborativeModel, Recommender, explicit_intent, infer_intent, list_versions, load_index
from vibeset.retrieval.evaluation import evaluate_retrieval, replay_ab
from vibeset.retrieval.intent import QueryParser
from vibeset.interactions import temporal_split
from vibeset.retrieval.synthetic import synthetic_index
from vibeset.workspace import load_workspace


def test_save_load_roundtrip_is_memory_mapped_and_versioned(tmp_path):
    index = synthetic_index(items=200, users=20, attributes=4, seed=3)
    first = index.save(tmp_path, keep=2)
    loaded = load_index(tmp_path)
    assert loaded.version == first.name
    assert isinstance(loaded.item_factors, np.memmap)
    np.testing.assert_array_equal(loaded.item_factors, index.item_factors)
    np.testing.assert_array_equal(loaded.post_rows, index.post_rows)
    assert loaded.item_ids == index.item_ids and loaded.attributes == ["a0", "a1", "a2", "a3"]
    assert not list(tmp_path.glob("**/*.pkl"))
    for seed in (4, 5):
        synthetic_index(items=200, users=20, attributes=4, seed=seed).save(tmp_path, keep=2)
    assert len(list_versions(tmp_path)) == 2 and first.name not in list_versions(tmp_path)
    assert load_index(tmp_path).manifest["synthetic"]["seed"] == 5
    with pytest.raises(DataError, match="no index here"):
        load_index(tmp_path / "missing")


def test_explicit_and_inferred_intent():
    index = synthetic_index(items=300, users=10, attributes=5, seen_per_user=60, seed=2)
    assert explicit_intent(index.attributes, ["a1"], ["a2"]).to_json() == {
        "attributes": ["a1"], "excluded": ["a2"], "source": "explicit"}
    with pytest.raises(UnknownAttributeError, match="unknown attribute 'zz'"):
        explicit_intent(index.attributes, ["zz"])
    inferred = infer_intent(index, 0, min_support=1)
    assert inferred.source == "inferred" and len(inferred.attributes) == 1
    assert inferred.explanation.startswith("more ")
    # The chosen attribute has the highest lift among those the user liked.
    assert inferred.mapping[0]["lift"] == max(m["lift"] for m in infer_intent(index, 0, top=5, min_support=1).mapping)


@pytest.fixture(scope="module")
def parser():
    taxonomy = load_workspace().taxonomy
    return QueryParser(
        {a.name: a.describe() for a in taxonomy}, MiniLMEncoder(threads=1), aliases={a.name: a.aliases for a in taxonomy}
    )


@pytest.mark.parametrize(
    "text, attributes, excluded",
    [
        ("something uplifting but not sappy", ["inspirational"], []),
        ("a funny movie with no gore", ["funny"], ["violent"]),
        ("scary but not too violent", ["scary"], ["violent"]),
        ("mind-bending sci-fi without romance", ["mind-bending"], ["romantic"]),
        ("feel good, nothing sad", ["feel-good"], ["sad"]),
        ("qwerty zxcv", [], []),
    ],
)
def test_free_text_maps_to_attributes_and_negations(parser, text, attributes, excluded):
    intent = parser.parse(text)
    assert (intent.attributes, intent.excluded) == (attributes, excluded)
    assert intent.source == "query" and intent.mapping
    for clause in intent.mapping:  # below the threshold a clause maps to nothing, and says so
        assert (clause["attribute"] is None) == (clause["similarity"] < parser.threshold)


def test_evaluation_and_ab_replay_on_synthetic_data():
    index = synthetic_index(items=300, users=40, attributes=4, seen_per_user=40, seed=6)
    # Interactions with time: re-derive from the index's seen matrix.
    rows = []
    for u, user in enumerate(index.user_ids):
        items, ratings = index.seen(u)
        rows += [(user, index.item_ids[i], float(r), t) for t, (i, r) in enumerate(zip(items, ratings))]
    frame = pd.DataFrame(rows, columns=["user_id", "video_id", "rating", "timestamp"])
    train, test = temporal_split(frame, test_fraction=0.2)
    assert train["timestamp"].max() < test["timestamp"].min()
    model = CollaborativeModel(factors=8, iterations=3).fit(train, index.item_ids, np.eye(300, 16, dtype=np.float32))
    report = evaluate_retrieval(index, model, train, test, k=10, positive=3.0, n_boot=100)
    assert set(report["systems"]) == {"restricted-personalized", "unrestricted-personalized", "restricted-popularity"}
    for metrics in report["systems"].values():
        recall = metrics["recall@10"]
        assert 0.0 <= recall["ci"][0] <= recall["value"] <= recall["ci"][1] <= 1.0
    same = replay_ab(index, index, model, train, test, k=10, positive=3.0, n_boot=100)
    assert same["recall@10"]["lift"] == 0.0 and same["queries"] > 0
    recommender = Recommender(index)
    assert recommender.attributes()[0]["videos"] == len(index.postings(0)[0])
