"""The sequential ranker: it learns an order, its ONNX graph is what serves, its artifact fails clearly."""

import numpy as np
import pandas as pd
import pytest

from vibeset.artifacts import KINDS, Artifact, Stamp
from vibeset.errors import ArtifactError
from vibeset.interactions import feedback
from vibeset.retrieval.sequential import SequentialModel, histories, load_sequential, save_sequential

ITEMS = 30


@pytest.fixture(scope="module")
def fitted():
    """40 users each walk the items in one cyclic order from their own start: the next item is always i + 1."""
    rows = [(f"u{u}", f"v{(u + t) % ITEMS}", 1.0, t) for u in range(40) for t in range(24)]
    frame = feedback(pd.DataFrame(rows, columns=["user_id", "video_id", "rating", "timestamp"]), explicit=False)
    model = SequentialModel(dim=16, max_len=8, layers=1, heads=2, dropout=0.0, epochs=40, batch=32, lr=5e-3)
    return model.fit(frame, [f"v{i}" for i in range(ITEMS)] + ["cold"], threads=1), frame


def test_it_learns_what_comes_next(fitted):
    model, frame = fitted
    users = [f"u{u}" for u in range(40)]
    states = model.user_states(histories(frame, users))
    scores = states @ model.item_vectors([f"v{i}" for i in range(ITEMS)]).T
    last = [(u + 23) % ITEMS for u in range(40)]
    right = np.mean([int(np.argmax(row)) == (item + 1) % ITEMS for row, item in zip(scores, last)])
    assert right >= 0.9, right
    assert model.losses_[-1] < model.losses_[0] / 2
    assert not model.item_vectors(["never-seen"]).any()  # unknown videos: zero vectors


def test_saved_model_serves_the_same_states_without_torch_and_fails_clearly(fitted, tmp_path):
    model, frame = fitted
    artifact = Artifact(KINDS["ranker"], tmp_path / "ranker")
    save_sequential(model, artifact, Stamp("run-1"))
    loaded = load_sequential(artifact)
    history = histories(frame, ["u3", "u7", "nobody"])
    np.testing.assert_allclose(loaded.user_states(history), model.user_states(history), atol=1e-6)
    assert loaded.user_states([[]]).shape == (1, 16)
    (artifact.path / "sasrec.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ArtifactError, match="sasrec.onnx: unreadable .*rebuild it with 'vibeset ranker'"):
        load_sequential(artifact)


def test_a_tiny_run_of_one_epoch_trains_without_a_schedule():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": np.repeat(["a", "b"], 12), "video_id": rng.choice([f"v{i}" for i in range(8)], 24),
                          "timestamp": np.arange(24), "rating": 5.0, "weight": 1.0, "strength": 1.0, "positive": True})
    model = SequentialModel(epochs=1, dim=8, max_len=6, layers=1, heads=1).fit(frame, np.array([f"v{i}" for i in range(8)]))
    assert len(model.losses_) == 1 and np.isfinite(model.losses_[0])
