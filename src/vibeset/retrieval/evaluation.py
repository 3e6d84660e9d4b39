"""Offline evaluation of restricted retrieval without a built-in advantage, and a replayed A/B of two index versions.

A query is (user, vibe); its vibe never comes from the labels being evaluated on the held-out
videos. Two protocols choose it as production would:

- ``predicted``: the vibe the intent model infers from the user's *training* history; the
  targets are all of the user's held-out positives, whatever they carry;
- ``golden``: each vibe the humans (golden test split) judge a held-out positive to carry; the
  target is that video.

Systems answer each query: restricted retrieval ranked by each ranker (ALS, the sequential
model) at its chosen blend, restricted popularity, and unrestricted retrieval by each ranker.
Reported: recall@K, NDCG@K, intent precision (share of results the golden set says carry the
vibe, over the results it judges) and catalogue coverage (share of the catalog recommended to
anyone), each with a 95% CI that resamples users, since one user's queries are not independent.

Two splits: per-user leave-last-N (the headline: most users count) and one global time cutoff
(nothing trained on happened after anything tested on). Every model is refitted on the train
part; the postings (the labels under evaluation) come from the index version.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..artifacts import Artifact, Stamp
from ..errors import DataError
from ..golden import GoldenSet
from ..interactions import leave_last_split, temporal_split, workspace_interactions
from ..metrics import bootstrap_weights, percentile_ci
from ..runs import golden_split, jsonable
from ..shards import read_embeddings
from ..workspace import Workspace
from .collaborative import CollaborativeModel
from .index import AttributeIndex, list_versions, load_index, seen_matrix, unit_scale
from .intent import Intent, infer_intent
from .recommender import Recommender
from .sequential import SASREC, SequentialModel, sequential_vectors
from .topk import RestrictedTopK

PROTOCOLS = ("predicted", "golden")
POPULARITY = "popularity"
REPORT_FILE = "evaluation.json"


@dataclass(frozen=True)
class System:
    """One way of answering a query: a ranker (or popularity), restricted to the vibe or not, a blend."""

    name: str
    ranker: str
    restricted: bool
    blend: float = 0.0


def systems_for(index: AttributeIndex, blends: Mapping[str, float] | None = None) -> list[System]:
    blends = blends or {}
    rankers = index.ranker_names
    return ([System(f"restricted {r}", r, True, float(blends.get(r, 0.0))) for r in rankers]
            + [System(f"restricted {POPULARITY}", POPULARITY, True)]
            + [System(f"unrestricted {r}", r, False) for r in rankers])


# -- models fitted on a split's train part ------------------------------------------------------------
def fit_on_train(index: AttributeIndex, train: pd.DataFrame, content: np.ndarray | None) -> CollaborativeModel:
    """A CF model with the index's settings, fitted on ``train`` for the index's items."""
    params = index.manifest.get("collaborative", {})
    keys = ("factors", "regularization", "alpha", "iterations", "ridge", "seed")
    return CollaborativeModel(**{key: params[key] for key in keys if key in params}).fit(train, index.item_ids, content)


def with_embeddings(
    index: AttributeIndex, model: CollaborativeModel, train: pd.DataFrame, sequential: SequentialModel | None = None
) -> AttributeIndex:
    """The same labels with rankers, seen items and popularity from models fitted on ``train``."""
    model.check_fitted()
    if model.item_ids_ != index.item_ids:
        raise DataError("the CF model was fitted for other items than the index holds")
    indptr, rows, ratings = seen_matrix(train, model.user_ids_, index.item_ids)
    rankers = {SASREC: sequential_vectors(sequential, train, model.user_ids_, index.item_ids)} if sequential else {}
    return dataclasses.replace(
        index, item_factors=model.item_factors_, user_ids=model.user_ids_,
        user_factors=unit_scale(model.item_factors_, model.user_factors_), seen_indptr=indptr, seen_rows=rows,
        seen_ratings=ratings, popularity=model.popularity_, rankers=rankers,
    )


def fitted_index(index: AttributeIndex, train: pd.DataFrame, content: np.ndarray | None,
                 sequential: Mapping[str, Any] | None) -> AttributeIndex:
    """``index``'s labels over ALS (and, given its settings, the sequential ranker) fitted on ``train``."""
    model = fit_on_train(index, train, content)
    seq = SequentialModel(**sequential).fit(train, index.item_ids) if sequential is not None else None
    return with_embeddings(index, model, train, seq)


# -- queries -------------------------------------------------------------------------------------------
def positives(index: AttributeIndex, test: pd.DataFrame) -> pd.DataFrame:
    """Held-out positives as (user row, item row) pairs known to the index."""
    liked = test[test["positive"]]
    users = liked["user_id"].map(index.user_row)
    items = liked["video_id"].map(index.item_row)
    keep = users.notna() & items.notna()
    frame = pd.DataFrame({"user": users[keep].astype(int), "item": items[keep].astype(int)})
    return frame.drop_duplicates().reset_index(drop=True)


def predicted_queries(index: AttributeIndex, events: pd.DataFrame) -> pd.DataFrame:
    """One query per user with held-out positives: the vibe inferred from the training history."""
    rows = []
    for user, items in events.groupby("user")["item"]:
        intent = infer_intent(index, int(user))
        if intent.attributes:
            rows.append((int(user), intent.attributes[0], tuple(sorted(items))))
    return pd.DataFrame(rows, columns=["user", "attribute", "targets"])


def golden_queries(events: pd.DataFrame, lookup: Mapping[tuple[int, str], bool]) -> pd.DataFrame:
    """One query per (held-out positive, vibe the golden set says it carries)."""
    carried: dict[int, list[str]] = {}
    for (row, attribute), label in lookup.items():
        if label:
            carried.setdefault(row, []).append(attribute)
    rows = [(int(user), attribute, (int(item),)) for user, item in events.itertuples(index=False)
            for attribute in sorted(carried.get(int(item), ()))]
    return pd.DataFrame(rows, columns=["user", "attribute", "targets"])


def golden_lookup(golden: GoldenSet | None, index: AttributeIndex) -> dict[tuple[int, str], bool]:
    """(item row, vibe) -> the golden label, for the videos the index holds."""
    if golden is None:
        return {}
    lookup = {}
    for video_id, attribute, label in golden.pairs[["video_id", "attribute", "label"]].itertuples(index=False):
        row = index.item_row(str(video_id))
        if row is not None and attribute in index.attributes:
            lookup[(row, attribute)] = bool(label)
    return lookup


# -- answering and scoring -----------------------------------------------------------------------------
def answer(recommender: Recommender, popular: RestrictedTopK, system: System, user: int, attribute: str, k: int) -> np.ndarray:
    """The top-``k`` item rows ``system`` returns for (user, vibe)."""
    if system.ranker == POPULARITY:
        seen = np.asarray(recommender.index.seen(user)[0], dtype=np.int64)
        position = recommender.index.attribute_position(attribute)
        return popular.search(np.ones(1, np.float32), include=[position], seen=seen, k=k).rows
    intent = Intent([attribute] if system.restricted else [])
    return recommender.search(user, intent, k=k, blend=system.blend, ranker=system.ranker).rows


def score(rows: np.ndarray, targets: tuple[int, ...], attribute: str, k: int, lookup: Mapping) -> tuple[float, ...]:
    """hits, targets, NDCG, golden-positive results and golden-judged results of one result list."""
    hit = np.isin(rows[:k], targets)
    gains = 1.0 / np.log2(np.arange(2, len(hit) + 2))
    ideal = gains[: min(k, len(targets))].sum() if len(gains) else 1.0
    ndcg = float((hit * gains).sum() / ideal) if ideal else 0.0
    known = [lookup[(int(r), attribute)] for r in rows[:k] if (int(r), attribute) in lookup]
    return float(hit.sum()), float(len(targets)), ndcg, float(sum(known)), float(len(known))


def run_queries(
    recommender: Recommender, queries: pd.DataFrame, systems: list[System], *, k: int, lookup: Mapping,
    progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, list[tuple[int, np.ndarray]]]]:
    """Score every system on every query; also each system's (user, result rows) for coverage."""
    index = recommender.index
    popular = RestrictedTopK(index.popularity[:, None], recommender.engine.postings, recommender.engine.scores)
    records, lists = [], {s.name: [] for s in systems}
    cache: dict[tuple[str, int], np.ndarray] = {}
    for user, attribute, targets in queries.itertuples(index=False):
        for system in systems:
            key = (system.name, user)
            rows = cache.get(key) if not system.restricted else None
            if rows is None:
                rows = answer(recommender, popular, system, user, attribute, k)
                if not system.restricted:
                    cache[key] = rows
            records.append((system.name, user, *score(rows, targets, attribute, k, lookup)))
            lists[system.name].append((user, rows))
        if progress:
            progress(1)
    columns = ["system", "user", "hits", "targets", "ndcg", "good", "known"]
    return pd.DataFrame(records, columns=columns), lists


def ratio_ci(users: np.ndarray, numerator: np.ndarray, denominator: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """Ratio of sums with a user-cluster bootstrap 95% CI."""
    codes, inverse = np.unique(users, return_inverse=True)
    num = np.bincount(inverse, weights=numerator, minlength=len(codes))
    den = np.bincount(inverse, weights=denominator, minlength=len(codes))
    value = float(num.sum() / den.sum()) if den.sum() else float("nan")
    weights = bootstrap_weights(len(codes), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = (weights @ num) / (weights @ den)
    return {"value": value, "ci": percentile_ci(samples), "n": int(den.sum())}


def coverage_ci(lists: list[tuple[int, np.ndarray]], n_items: int, n_boot: int, seed: int) -> dict[str, Any]:
    """Share of the catalog in any result list, with replicates that resample users.

    A resample holds about 63% distinct users and a union of fewer lists is smaller, so the
    replicates are re-centred on the observed value (bias-corrected) before taking percentiles.
    """
    users = np.array([u for u, _ in lists], dtype=np.int64)
    codes, inverse = np.unique(users, return_inverse=True)
    rows = np.concatenate([r for _, r in lists]) if lists else np.zeros(0, np.int64)
    owners = np.repeat(inverse, [len(r) for _, r in lists]) if lists else np.zeros(0, np.int64)
    incidence = sp.csr_matrix((np.ones(len(rows)), (owners, rows)), shape=(len(codes), n_items))
    incidence.data[:] = 1.0
    value = float(len(np.unique(rows)) / max(n_items, 1))
    weights = bootstrap_weights(len(codes), n_boot, seed)
    samples = np.concatenate([(sp.csr_matrix(chunk) @ incidence > 0).sum(axis=1).A1 for chunk in np.array_split(weights, 20)
                              if len(chunk)]) / max(n_items, 1)
    low, high = percentile_ci(samples - samples.mean() + value)
    return {"value": value, "ci": [max(low, 0.0), min(high, 1.0)], "n": len(codes)}


def summarise(records: pd.DataFrame, lists: Mapping[str, list], systems: list[System], *, k: int, n_items: int,
              n_boot: int, seed: int) -> dict[str, Any]:
    out = {}
    for system in systems:
        part = records[records["system"] == system.name]
        users, ones = part["user"].to_numpy(), np.ones(len(part))
        out[system.name] = {
            f"recall@{k}": ratio_ci(users, part["hits"].to_numpy(), part["targets"].to_numpy(), n_boot, seed),
            f"ndcg@{k}": ratio_ci(users, part["ndcg"].to_numpy(), ones, n_boot, seed),
            "intent_precision": ratio_ci(users, part["good"].to_numpy(), part["known"].to_numpy(), n_boot, seed),
            "coverage": coverage_ci(lists[system.name], n_items, n_boot, seed),
        }
    return out


def evaluate_protocol(recommender: Recommender, queries: pd.DataFrame, systems: list[System], *, k: int,
                      lookup: Mapping, n_boot: int, seed: int = 0, progress: Callable[[int], None] | None = None) -> dict:
    """Every system on ``queries``: its metrics (``systems``) and what it is (``setup``: ranker, restricted, blend)."""
    setup = {s.name: {"ranker": s.ranker, "restricted": s.restricted, "blend": s.blend} for s in systems}
    if queries.empty:
        return {"queries": 0, "users": 0, "systems": {}, "setup": setup}
    records, lists = run_queries(recommender, queries, systems, k=k, lookup=lookup, progress=progress)
    return {"queries": len(queries), "users": int(queries["user"].nunique()), "setup": setup,
            "systems": summarise(records, lists, systems, k=k, n_items=len(recommender.index), n_boot=n_boot, seed=seed)}


# -- the inferred-intent model ---------------------------------------------------------------------------
def evaluate_intent(index: AttributeIndex, events: pd.DataFrame, *, n_boot: int, seed: int = 0) -> dict[str, Any]:
    """Does the vibe inferred from a user's history carry their next positives more often than the
    vibe most common in all training interactions (one vibe for everyone) does? Paired by user;
    "carry" by the labels under evaluation, the same for both. A vibe on most of the catalog wins
    raw matches, so ``inferred_lift`` also compares each user's hits with what the vibe's share of
    everyone's next positives predicts: above 1, the inference knows this user (popularity: 1)."""
    carried = np.zeros((len(index.attributes), len(index)), dtype=bool)
    for a in range(len(index.attributes)):
        carried[a, index.postings(a)[0]] = True
    popular = index.attributes[int(np.argmax(carried[:, index.seen_rows].sum(axis=1)))]
    base = carried[:, events["item"].to_numpy()].mean(axis=1)  # each vibe's share of everyone's next positives
    rows = []
    for user, items in events.groupby("user")["item"]:
        inferred = infer_intent(index, int(user)).attributes
        if inferred:
            targets, vibe = items.to_numpy(), index.attribute_position(inferred[0])
            hits = [carried[vibe, targets].sum(), carried[index.attribute_position(popular), targets].sum()]
            rows.append((int(user), *hits, len(targets), len(targets) * base[vibe]))
    if not rows:
        return {"users": 0}
    users, inferred_hits, popular_hits, n, chance = (np.array(c, dtype=float) for c in zip(*rows))
    codes = users.astype(int)
    weights = bootstrap_weights(len(codes), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = (weights @ inferred_hits - weights @ popular_hits) / (weights @ n)
    return {
        "users": len(rows), "popular_vibe": popular,
        "inferred": ratio_ci(codes, inferred_hits, n, n_boot, seed),
        "popularity": ratio_ci(codes, popular_hits, n, n_boot, seed),
        "difference": {"value": float((inferred_hits.sum() - popular_hits.sum()) / n.sum()), "ci": percentile_ci(gap)},
        # hits over what the vibe's share of everyone's next positives predicts (the popular vibe scores 1 by design)
        "inferred_lift": ratio_ci(codes, inferred_hits, chance, n_boot, seed),
    }


# -- one split, a workspace, an A/B replay --------------------------------------------------------------
def evaluate_split(evaluated: AttributeIndex, test: pd.DataFrame, *, lookup: Mapping, blends: Mapping[str, float],
                   k: int, n_boot: int, seed: int = 0, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Both protocols and the intent model on one split (``evaluated``: models fitted on its train part)."""
    recommender = Recommender(evaluated)
    events = positives(evaluated, test)
    if events.empty:
        raise DataError("no held-out positives of known users and videos to evaluate")
    systems = systems_for(evaluated, blends)
    queries = {"predicted": predicted_queries(evaluated, events), "golden": golden_queries(events, lookup)}
    return {
        "events": len(events), "users": int(events["user"].nunique()), "test_interactions": len(test),
        "protocols": {name: evaluate_protocol(recommender, q, systems, k=k, lookup=lookup, n_boot=n_boot, seed=seed,
                                              progress=progress) for name, q in queries.items()},
        "intent": evaluate_intent(evaluated, events, n_boot=n_boot, seed=seed),
    }


def splits(frame: pd.DataFrame, *, last: int, test_fraction: float) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    return {f"leave-last-{last}": leave_last_split(frame, last=last), "temporal": temporal_split(frame, test_fraction=test_fraction)}


def workspace_content(shards: Artifact, item_ids: list[str]) -> np.ndarray:
    ids, vectors, _ = read_embeddings(shards)
    row = {video_id: i for i, video_id in enumerate(ids)}
    missing = [v for v in item_ids if v not in row]
    if missing:
        raise shards.error(shards.path, f"has no embedding for {len(missing)} indexed videos (first {missing[0]!r})")
    return vectors[[row[v] for v in item_ids]]


def evaluate_workspace(
    workspace: Workspace, index_artifact: Artifact, shards: Artifact, *, sequential: Mapping[str, Any] | None = None,
    blends: Mapping[str, float] | None = None, k: int = 10, last: int = 5, test_fraction: float = 0.1,
    versions: tuple[str, str] | None = None, n_boot: int = 1000, progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate the current index on both splits and protocols; replay A/B between ``versions``
    (default: previous vs current). The golden test split (query vibes of the golden protocol,
    intent precision) is a recorded use."""
    root = index_artifact.path
    index = load_index(root)
    content = workspace_content(shards, index.item_ids)
    golden = golden_split(workspace, "test", final=True, purpose="eval-retrieval: golden-vibe queries, intent precision") \
        if workspace.config.judgements is not None else None
    lookup = golden_lookup(golden, index)
    report: dict[str, Any] = {"k": k, "index_version": index.version, "defaults": index.defaults, "golden_pairs": len(lookup),
                              "blends": dict(blends or {}), "splits": {}}
    fitted: dict[str, tuple[AttributeIndex, pd.DataFrame, pd.DataFrame]] = {}
    for name, (train, test) in splits(workspace_interactions(workspace), last=last, test_fraction=test_fraction).items():
        evaluated = fitted_index(index, train, content, sequential)
        fitted[name] = (evaluated, train, test)
        report["splits"][name] = {"train_interactions": len(train), **evaluate_split(
            evaluated, test, lookup=lookup, blends=blends or {}, k=k, n_boot=n_boot, progress=progress)}
    headline = report["splits"][f"leave-last-{last}"]
    report.update(split=f"leave-last-{last}", protocol="predicted", users=headline["users"], events=headline["events"],
                  queries=headline["protocols"]["predicted"]["queries"], systems=headline["protocols"]["predicted"]["systems"])
    report["ab"] = _ab(root, index, versions, fitted[f"leave-last-{last}"], lookup, k=k, n_boot=n_boot)
    return report


def _ab(root, index: AttributeIndex, versions, fitted, lookup, *, k: int, n_boot: int) -> dict[str, Any]:
    saved = list_versions(root)
    if versions is None and len(saved) >= 2:
        versions = (saved[-2], index.version)
    if versions is None:
        return {"skipped": f"A/B replay needs two index versions under {root}; found {len(saved)}"}
    evaluated, _, test = fitted
    arms = [dataclasses.replace(evaluated, **_labels_of(load_index(root, version=v))) for v in versions]
    return replay_ab(*arms, test, lookup=lookup, k=k, n_boot=n_boot) | {"a": versions[0], "b": versions[1]}


def _labels_of(index: AttributeIndex) -> dict[str, Any]:
    return {"post_offsets": index.post_offsets, "post_rows": index.post_rows, "post_scores": index.post_scores,
            "attributes": index.attributes, "annotations": index.annotations, "manifest": index.manifest}


def replay_ab(a: AttributeIndex, b: AttributeIndex, test: pd.DataFrame, *, lookup: Mapping, k: int = 10,
              n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Replay the golden-protocol queries (the same for both: neither arm's labels choose them) against
    two label versions over the same models; the lift of B over A with a paired user bootstrap CI."""
    arms = [Recommender(x) for x in (a, b)]
    if a.item_ids != b.item_ids or a.attributes != b.attributes:
        raise DataError("A/B needs two index versions over the same items and attributes")
    queries = golden_queries(positives(a, test), lookup)
    if queries.empty:
        raise DataError("A/B replay found no queries: no held-out positive has golden labels")
    system = [System("restricted", a.defaults["ranker"], True, a.defaults["blend"])]
    frames = [run_queries(arm, queries, system, k=k, lookup=lookup)[0] for arm in arms]
    users = frames[0]["user"].to_numpy()
    codes, inverse = np.unique(users, return_inverse=True)
    weights = bootstrap_weights(len(codes), n_boot, seed)
    out: dict[str, Any] = {"k": k, "queries": len(queries), "users": len(codes), "protocol": "golden"}
    for metric, num, den in ((f"recall@{k}", "hits", "targets"), (f"ndcg@{k}", "ndcg", None), ("intent_precision", "good", "known")):
        sums = [(np.bincount(inverse, weights=f[num], minlength=len(codes)),
                 np.bincount(inverse, weights=f[den] if den else np.ones(len(f)), minlength=len(codes))) for f in frames]
        (na, da), (nb, db) = sums
        value_a = na.sum() / da.sum() if da.sum() else float("nan")
        value_b = nb.sum() / db.sum() if db.sum() else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            lift = ((weights @ nb) / (weights @ db)) / ((weights @ na) / (weights @ da)) - 1.0
        out[metric] = {"a": float(value_a), "b": float(value_b),
                       "lift": float(value_b / value_a - 1.0) if value_a else float("nan"), "ci": percentile_ci(lift)}
    return out


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
