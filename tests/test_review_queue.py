"""The review queue ranks (video, vibe) pairs by the value of one more human judgement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vibeset import review_queue
from vibeset.golden import workspace_golden
from vibeset.reviews import Review, append_review, undo_last
from vibeset.workspace import init_workspace, load_workspace


@pytest.fixture
def ws(tmp_path):
    init_workspace(tmp_path)
    return load_workspace(tmp_path)


def _annotations(ws, score_a, score_b) -> dict[str, pd.DataFrame]:
    """Two annotators over the whole catalog; ``score_x(video_index, attribute_index)`` gives each score."""
    ids, names = ws.catalog.ids, ws.taxonomy.names
    frames = {}
    for name, score in (("a", score_a), ("b", score_b)):
        rows = [{"video_id": v, "attribute": n, "score": score(i, j)} for i, v in enumerate(ids) for j, n in enumerate(names)]
        frame = pd.DataFrame(rows)
        frames[name] = frame.assign(label=frame["score"] >= 0.5, evidence="")
    return frames


def test_signals_and_value(ws):
    golden = workspace_golden(ws)
    frames = _annotations(ws, lambda i, j: 0.9 if i % 2 else 0.1, lambda i, j: 0.9)
    ranked = review_queue.rank_pairs(ws, golden, frames)
    assert len(ranked) == len(ws.catalog) * len(ws.taxonomy)
    judged = set(golden.pairs["video_id"])
    never = ~ranked.index.get_level_values("video_id").isin(judged)
    assert (ranked.loc[never, "novelty"] == 1).all() and (ranked.loc[~never, "novelty"] < 1).all()
    # a and b disagree on even-numbered videos only
    even = np.arange(len(ranked)) // len(ws.taxonomy) % 2 == 0
    assert (ranked.loc[even, "d_models"] == 1).all() and (ranked.loc[~even, "d_models"] == 0).all()
    assert ranked["uncertainty"].between(0, 1).all() and ranked["value"].between(0, 1).all()
    expected = sum(w * ranked[s] for s, w in review_queue.WEIGHTS.items())
    assert np.allclose(ranked["value"], expected)
    pairs = golden.pairs["attribute"].value_counts()
    scarcity = ranked.groupby(level="attribute")["scarcity"].first()
    assert (scarcity.loc[pairs.idxmax()] <= scarcity.loc[pairs.idxmin()])
    # the ranked queue puts the pairs worth most first
    queue = review_queue.select(ranked)
    assert queue["value"].is_monotonic_decreasing


def test_filters_exclude_and_blind_reasons(ws):
    golden = workspace_golden(ws)
    frames = _annotations(ws, lambda i, j: (i * 7 + j * 3) % 10 / 10, lambda i, j: 0.2)
    ranked = review_queue.rank_pairs(ws, golden, frames)
    fp = review_queue.select(ranked, kind="fp", annotator="a")
    assert len(fp) and (fp["split"] == "dev").all() and (fp["label:a"] == 1).all() and (fp["human"] == 0).all()
    fn = review_queue.select(ranked, kind="fn", annotator="a", attribute="funny")
    assert (fn.index.get_level_values("attribute") == "funny").all() and (fn["human"] == 1).all()
    new = review_queue.select(ranked, kind="new")
    assert len(new) and (new["novelty"] == 1).all()
    top = review_queue.select(ranked).index[:3]
    rest = review_queue.select(ranked, exclude=list(top))
    assert not set(top) & set(rest.index) and len(rest) == len(ranked) - 3
    reasons = review_queue.reasons(ranked.loc[top[0]])
    assert reasons and not any(word in " ".join(reasons) for word in ("yes", "no ", "0."))  # judging stays blind


def test_agreement_as_you_go_and_undo(ws):
    golden = workspace_golden(ws)
    frames = _annotations(ws, lambda i, j: 0.9, lambda i, j: 0.1)
    pair = golden.pairs[golden.pairs["n_raters"] >= 2].iloc[0]
    consensus = bool(pair["label"])
    append_review(ws, Review("alice", pair["video_id"], pair["attribute"], 5.0 if consensus else 1.0))
    golden = workspace_golden(ws)
    ranked = review_queue.rank_pairs(ws, golden, frames)
    agreement = review_queue.rater_agreement(ws, "alice", golden, ranked)
    # the survey rater "alice" is someone else: the web reviewer is compared with her, not merged
    assert agreement.judged == 1 and agreement.with_raters == (1, 1)
    assert agreement.with_annotators == {"a": (1 if consensus else 0, 1), "b": (0 if consensus else 1, 1)}
    detail = review_queue.pair_detail(golden, ranked, pair["video_id"], pair["attribute"])
    assert ("review:alice", 5.0 if consensus else 1.0) in detail["ratings"] and set(detail["annotators"]) == {"a", "b"}
    assert undo_last(ws, "alice").video_id == pair["video_id"]
    assert review_queue.rater_agreement(ws, "alice", workspace_golden(ws), ranked).judged == 0
    assert undo_last(ws, "alice") is None
