"""Offline evaluation of restricted retrieval on a temporal split, and a replayed A/B of two index versions.

For each held-out positive (user, video) and each attribute A the video carries, three systems
answer "top K for this user": restricted-personalized (carrying A, ranked by CF), unrestricted-
personalized (CF over everything) and restricted-popularity (carrying A, most popular first).
Recall@K (did the held-out video come back), NDCG@K, and intent precision (share of results
that carry A by the golden set, over the results it knows) are reported with 95% bootstrap CIs
that resample users, since one user's queries are not independent.

The CF model is refitted on the train part so the held-out interactions never shape the
embeddings; postings (the labels) come from the saved index versions.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..artifacts import Artifact, Stamp
from ..errors import DataError
from ..golden import GoldenSet
from ..metrics import bootstrap_weights, percentile_ci
from ..runs import golden_split, jsonable
from ..shards import read_embeddings
from ..workspace import Workspace
from .collaborative import CollaborativeModel
from .index import AttributeIndex, list_versions, load_index, seen_matrix
from ..interactions import temporal_split, workspace_interactions
from .intent import Intent
from .recommender import Recommender
from .topk import RestrictedTopK

SYSTEMS = ("restricted-personalized", "unrestricted-personalized", "restricted-popularity")


def with_embeddings(index: AttributeIndex, model: CollaborativeModel, train: pd.DataFrame) -> AttributeIndex:
    """The same labels with embeddings, seen items and popularity from ``model`` fitted on ``train``."""
    model.check_fitted()
    if model.item_ids_ != index.item_ids:
        raise DataError("the CF model was fitted for other items than the index holds")
    indptr, rows, ratings = seen_matrix(train, model.user_ids_, index.item_ids)
    return dataclasses.replace(
        index,
        item_factors=model.item_factors_,
        user_ids=model.user_ids_,
        user_factors=model.user_factors_,
        seen_indptr=indptr,
        seen_rows=rows,
        seen_ratings=ratings,
        popularity=model.popularity_,
    )


def _golden_lookup(golden: GoldenSet | None, index: AttributeIndex) -> dict[tuple[int, str], bool]:
    if golden is None:
        return {}
    lookup = {}
    for video_id, attribute, label in golden.pairs[["video_id", "attribute", "label"]].itertuples(index=False):
        row = index.item_row(str(video_id))
        if row is not None:
            lookup[(row, attribute)] = bool(label)
    return lookup


def _events(index: AttributeIndex, test: pd.DataFrame, positive: float) -> pd.DataFrame:
    """Held-out positives as (user_row, item_row) pairs known to the index."""
    liked = test[test["rating"] >= positive]
    users = liked["user_id"].map(lambda u: index.user_row(u))
    items = liked["video_id"].map(lambda v: index.item_row(v))
    keep = users.notna() & items.notna()
    frame = pd.DataFrame({"user": users[keep].astype(int), "item": items[keep].astype(int)})
    return frame.drop_duplicates().reset_index(drop=True)


def _score(rows: np.ndarray, target: int, attribute: str, k: int, golden: dict) -> tuple[float, float, float, int]:
    """hit, ndcg, golden-positive count and golden-known count of one result list."""
    hits = np.flatnonzero(rows == target)
    ndcg = 1.0 / np.log2(hits[0] + 2) if len(hits) else 0.0
    known = [golden[(int(r), attribute)] for r in rows[:k] if (int(r), attribute) in golden]
    return float(len(hits) > 0), float(ndcg), float(sum(known)), len(known)


def _bootstrap(users: np.ndarray, numerator: np.ndarray, denominator: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """Ratio of sums with a user-cluster bootstrap 95% CI."""
    codes, inverse = np.unique(users, return_inverse=True)
    num = np.bincount(inverse, weights=numerator, minlength=len(codes))
    den = np.bincount(inverse, weights=denominator, minlength=len(codes))
    value = float(num.sum() / den.sum()) if den.sum() else float("nan")
    weights = bootstrap_weights(len(codes), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = (weights @ num) / (weights @ den)
    return {"value": value, "ci": percentile_ci(samples), "n": int(den.sum())}


def evaluate_retrieval(
    index: AttributeIndex,
    model: CollaborativeModel,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    golden: GoldenSet | None = None,
    k: int = 10,
    positive: float = 4.0,
    n_boot: int = 1000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Recall@K, NDCG@K and intent precision of the three systems (see module docstring)."""
    evaluated = with_embeddings(index, model, train)
    recommender = Recommender(evaluated)
    popular = RestrictedTopK(evaluated.popularity[:, None], recommender.engine.postings, recommender.engine.scores)
    lookup = _golden_lookup(golden, evaluated)
    events = _events(evaluated, test, positive)
    if events.empty:
        raise DataError(f"no held-out positives (rating >= {positive}) of known users and videos to evaluate")
    records = []
    unrestricted: dict[int, np.ndarray] = {}
    for user, item in events.itertuples(index=False):
        if user not in unrestricted:
            unrestricted[user] = recommender.search(user, Intent([]), k=k).rows
        seen = np.asarray(evaluated.seen(user)[0], dtype=np.int64)
        for attribute in recommender.item_attributes[item]:
            position = evaluated.attribute_position(attribute)
            lists = {
                SYSTEMS[0]: recommender.search(user, Intent([attribute]), k=k).rows,
                SYSTEMS[1]: unrestricted[user],
                SYSTEMS[2]: popular.search(np.ones(1, np.float32), include=[position], seen=seen, k=k).rows,
            }
            for system, rows in lists.items():
                hit, ndcg, good, known = _score(rows, item, attribute, k, lookup)
                records.append((system, user, attribute, hit, ndcg, good, known))
        if progress:
            progress(1)
    frame = pd.DataFrame(records, columns=["system", "user", "attribute", "hit", "ndcg", "good", "known"])
    systems = {}
    for offset, system in enumerate(SYSTEMS):
        part = frame[frame["system"] == system]
        ones = np.ones(len(part))
        users = part["user"].to_numpy()
        systems[system] = {
            f"recall@{k}": _bootstrap(users, part["hit"].to_numpy(), ones, n_boot, seed),
            f"ndcg@{k}": _bootstrap(users, part["ndcg"].to_numpy(), ones, n_boot, seed),
            "intent_precision": _bootstrap(users, part["good"].to_numpy(), part["known"].to_numpy(float), n_boot, seed),
        }
    return {
        "k": k,
        "index_version": index.version,
        "train_interactions": len(train),
        "test_interactions": len(test),
        "events": len(events),
        "queries": int((frame["system"] == SYSTEMS[0]).sum()),
        "users": int(events["user"].nunique()),
        "golden_pairs": len(lookup),
        "systems": systems,
    }


def replay_ab(
    a: AttributeIndex,
    b: AttributeIndex,
    model: CollaborativeModel,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    golden: GoldenSet | None = None,
    k: int = 10,
    positive: float = 4.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Replay held-out positives against two index versions (same CF, their own labels).

    A query (user, A) is issued when either version labels the held-out video with A. Reports
    each arm's recall@K and intent precision and the lift of B over A with a paired
    user-cluster bootstrap CI.
    """
    arms = [Recommender(with_embeddings(x, model, train)) for x in (a, b)]
    lookup = _golden_lookup(golden, arms[0].index)
    if arms[0].index.item_ids != arms[1].index.item_ids or arms[0].index.attributes != arms[1].index.attributes:
        raise DataError("A/B needs two index versions over the same items and attributes")
    events = _events(arms[0].index, test, positive)
    records = []
    for user, item in events.itertuples(index=False):
        for attribute in sorted(set(arms[0].item_attributes[item]) | set(arms[1].item_attributes[item])):
            row = [user]
            for arm in arms:
                rows = arm.search(user, Intent([attribute]), k=k).rows
                row.extend(_score(rows, item, attribute, k, lookup))
            records.append(row)
    frame = pd.DataFrame(records, columns=["user", "hit_a", "ndcg_a", "good_a", "known_a", "hit_b", "ndcg_b", "good_b", "known_b"])
    if frame.empty:
        raise DataError("A/B replay found no queries: neither version labels any held-out positive")
    users = frame["user"].to_numpy()
    codes, inverse = np.unique(users, return_inverse=True)
    weights = bootstrap_weights(len(codes), n_boot, seed)
    out: dict[str, Any] = {"a": a.version, "b": b.version, "k": k, "queries": len(frame), "users": len(codes)}
    for metric, num, den in (
        (f"recall@{k}", "hit", None),
        (f"ndcg@{k}", "ndcg", None),
        ("intent_precision", "good", "known"),
    ):
        sums = []
        for arm in "ab":
            n = np.bincount(inverse, weights=frame[f"{num}_{arm}"], minlength=len(codes))
            d = np.bincount(inverse, weights=frame[f"{den}_{arm}"] if den else np.ones(len(frame)), minlength=len(codes))
            sums.append((n, d))
        (na, da), (nb, db) = sums
        value_a = na.sum() / da.sum() if da.sum() else float("nan")
        value_b = nb.sum() / db.sum() if db.sum() else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            lift = ((weights @ nb) / (weights @ db)) / ((weights @ na) / (weights @ da)) - 1.0
        out[metric] = {
            "a": float(value_a),
            "b": float(value_b),
            "lift": float(value_b / value_a - 1.0) if value_a else float("nan"),
            "ci": percentile_ci(lift),
        }
    return out


def fit_on_train(
    index: AttributeIndex, train: pd.DataFrame, content: np.ndarray | None, model: CollaborativeModel | None = None
) -> CollaborativeModel:
    """A CF model with the index's settings, fitted on ``train`` for the index's items."""
    params = index.manifest.get("collaborative", {})
    model = model or CollaborativeModel(
        **{key: params[key] for key in ("factors", "regularization", "alpha", "iterations", "ridge", "seed") if key in params}
    )
    return model.fit(train, index.item_ids, content)


def evaluate_workspace(
    workspace: Workspace,
    index_artifact: Artifact,
    shards: Artifact,
    *,
    k: int = 10,
    test_fraction: float = 0.1,
    versions: tuple[str, str] | None = None,
    n_boot: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate the workspace's current index; replay A/B between ``versions`` (default: previous vs current).

    Intent precision reads the golden test split (a recorded use of it).
    """
    root = index_artifact.path
    index = load_index(root)
    train, test = temporal_split(workspace_interactions(workspace), test_fraction=test_fraction)
    ids, vectors, _ = read_embeddings(shards)
    row = {video_id: i for i, video_id in enumerate(ids)}
    content = vectors[[row[v] for v in index.item_ids]]
    model = fit_on_train(index, train, content)
    golden: GoldenSet | None = None
    if workspace.config.judgements is not None:
        golden = golden_split(workspace, "test", final=True, purpose="eval-retrieval: intent precision")
    report = evaluate_retrieval(index, model, train, test, golden=golden, k=k, n_boot=n_boot, progress=progress)
    report["split"] = {"test_fraction": test_fraction, "cutoff": int(train["timestamp"].max())}
    saved = list_versions(root)
    if versions is None and len(saved) >= 2:
        versions = (saved[-2], index.version)
    if versions is None:
        report["ab"] = {"skipped": f"A/B replay needs two index versions under {root}; found {len(saved)}"}
    else:
        a, b = (load_index(root, version=v) for v in versions)
        report["ab"] = replay_ab(a, b, model, train, test, golden=golden, k=k, n_boot=n_boot)
    return report


REPORT_FILE = "evaluation.json"


def write_evaluation(report: dict[str, Any], artifact: Artifact, stamp: Stamp) -> None:
    stamp.meta = {"index_version": report.get("index_version"), "users": report.get("users"), "k": report.get("k")}
    with artifact.replace(stamp) as staging:
        (staging / REPORT_FILE).write_text(json.dumps(jsonable(report), indent=2, allow_nan=False), encoding="utf-8")


def read_evaluation(artifact: Artifact) -> dict[str, Any]:
    artifact.complete_manifest()
    report = artifact.read_json(REPORT_FILE)
    if not isinstance(report, dict) or "systems" not in report:
        raise artifact.error(artifact.path / REPORT_FILE, "not a retrieval evaluation (no 'systems')")
    return report
