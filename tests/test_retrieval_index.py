"""Index persistence (versions, CURRENT pointer, memory maps), intent parsing, inferred intent, evaluation."""

import dataclasses

import numpy as np
import pytest

from vibeset.encoder import MiniLMEncoder
from vibeset.errors import DataError, UnknownAttributeError
from vibeset.retrieval import Recommender, explicit_intent, infer_intent, list_versions, load_index
from vibeset.retrieval.intent import IntentError, QueryParser
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


def test_served_blocks_are_views_of_the_saved_vectors_in_posting_order(tmp_path):
    # one copy in the page cache for every serving worker, and the same exact answers
    index = synthetic_index(items=3000, users=20, attributes=5, prevalence=(0.1, 0.5), seed=2)
    index.save(tmp_path)
    loaded = load_index(tmp_path)
    vectors = loaded.posting_vectors("als")
    assert isinstance(vectors, np.memmap) and vectors.shape == (len(index.post_rows), 16)
    recommender = Recommender(loaded)
    assert recommender.engine.blocks and all(np.shares_memory(block.vectors, vectors) for block in recommender.engine.blocks.values())
    for vibe in loaded.attributes:
        rows, _ = loaded.postings(loaded.attribute_position(vibe))
        user = 7
        seen = set(loaded.seen(user)[0].tolist())
        scores = {int(r): float(loaded.user_factors[user] @ loaded.item_factors[r]) for r in rows if int(r) not in seen}
        best = sorted(scores, key=lambda r: (-scores[r], r))[:10]
        got = recommender.search(user, explicit_intent(loaded.attributes, [vibe]), k=10)
        assert got.rows.tolist() == best
    other = dataclasses.replace(loaded, item_factors=np.ones_like(loaded.item_factors))  # as the evaluation refits
    assert (other.posting_vectors("als") == 1).all()
    np.save(next(tmp_path.glob("versions/*/als.postings.npy")), np.zeros((3, 16), np.float32))
    with pytest.raises(DataError, match=r"als.postings.npy has shape \(3, 16\)"):
        load_index(tmp_path)


def test_explicit_and_inferred_intent():
    index = synthetic_index(items=300, users=10, attributes=5, seen_per_user=60, seed=2)
    assert explicit_intent(index.attributes, ["a1"], ["a2"]).to_json() == {
        "matched": ["a1"], "excluded": ["a2"], "ignored": [], "source": "explicit"}
    with pytest.raises(UnknownAttributeError, match="unknown vibe 'a77'; closest: a"):
        explicit_intent(index.attributes, ["a77"])
    inferred = infer_intent(index, 0, min_support=1)
    assert inferred.source == "inferred" and len(inferred.attributes) == 1 and not inferred.fallback
    assert inferred.explanation.startswith("inferred from the history: ")
    # The chosen attribute is the most over-represented among those the user liked, and over-represented.
    ranked = infer_intent(index, 0, top=5, min_support=1).mapping
    assert inferred.mapping[0]["z"] == max(m["z"] for m in ranked) > 0 and inferred.mapping[0]["lift"] > 1


@pytest.fixture(scope="module")
def parser():
    taxonomy = load_workspace().taxonomy
    return QueryParser(
        {a.name: a.describe() for a in taxonomy}, MiniLMEncoder(threads=1), aliases={a.name: a.aliases for a in taxonomy}
    )


@pytest.mark.parametrize(
    "text, attributes, excluded, ignored",
    [
        ("something uplifting but not sappy", ["inspirational"], [], ["not sappy"]),
        ("a funny movie with no gore", ["funny"], ["violent"], []),
        ("scary but not too violent", ["scary"], ["violent"], []),
        ("mind-bending sci-fi without romance", ["mind-bending"], ["romantic"], []),
        ("feel good, nothing sad", ["feel-good"], ["sad"], []),
    ],
)
def test_free_text_maps_to_attributes_and_negations(parser, text, attributes, excluded, ignored):
    intent = parser.parse(text)
    assert (intent.attributes, intent.excluded, intent.ignored) == (attributes, excluded, ignored)
    assert intent.source == "query" and intent.mapping and not intent.fallback
    for clause in intent.mapping:  # below the threshold a clause maps to nothing, and says so
        assert (clause["attribute"] is None) == (clause["similarity"] < parser.threshold)


@pytest.mark.parametrize("text, closest", [("dakr", "dark"), ("qwerty zxcv", None), ("pump me up", None)])
def test_text_matching_no_vibe_is_an_error_naming_the_closest(parser, text, closest):
    with pytest.raises(IntentError, match="matches no vibe; closest: ") as caught:
        parser.parse(text)
    assert len(caught.value.closest) == 3 and (closest is None or caught.value.closest[0] == closest)
    flagged = parser.parse(text, fallback=True)
    assert flagged.fallback and flagged.attributes == [] and flagged.to_json()["fallback"] == "unrestricted"
    assert flagged.ignored


def test_contradictions_and_bounds(parser):
    with pytest.raises(IntentError, match="contradictory intent: funny both requested and excluded"):
        parser.parse("funny but not funny")
    with pytest.raises(IntentError, match="at most 200"):
        parser.parse("dark " * 60)
    with pytest.raises(IntentError, match="5 clauses; at most 4"):
        parser.parse(", ".join(["dark"] * 5))


def test_two_vibes_that_never_go_together_are_a_contradiction():
    import dataclasses

    index = synthetic_index(items=1000, users=10, attributes=3, seed=1)
    halves = [np.arange(0, 500), np.arange(500, 1000), np.arange(0, 1000, 2)]  # a0 and a1 disjoint; a2 meets both
    index = dataclasses.replace(index, post_offsets=np.cumsum([0, *map(len, halves)]),
                                post_rows=np.concatenate(halves).astype(np.int32), post_scores=np.ones(2000, np.float32))
    recommender = Recommender(index)
    with pytest.raises(IntentError, match="contradictory intent: a0 and a1 go together on 0 videos where chance predicts 250"):
        recommender.intent("u1", "a0,a1")
    assert recommender.intent("u1", "a0,a2").attributes == ["a0", "a2"]
    with pytest.raises(IntentError, match="a2 both requested and excluded"):
        recommender.intent("u1", "a2,-a2")
