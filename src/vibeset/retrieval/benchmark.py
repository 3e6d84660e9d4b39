"""Restricted top-K at scale: vibeset's exact engine against FAISS filtered search, same process.

Synthetic data (Gaussian item and query vectors, random postings) at a chosen size; per
prevalence: p50/p99 single-threaded latency and recall@K against brute force for vibeset,
FAISS flat with IDSelectorBatch (and IDSelectorBitmap), and FAISS HNSW with an IDSelector at
several efSearch values. Random Gaussian vectors are a hard case for graph indexes, which is
what makes recall worth measuring rather than assuming.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from rich.table import Table
from threadpoolctl import threadpool_limits

from .topk import RestrictedTopK

LEVELS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
EF_SEARCH = (128, 512, 2048)


def _latency(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4)}


def run_benchmark(
    *,
    items: int = 1_000_000,
    dim: int = 64,
    attributes: int = 100,
    queries: int = 100,
    k: int = 100,
    hnsw_m: int = 32,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    import faiss

    rng = np.random.default_rng(seed)
    spread = np.geomspace(LEVELS[0], LEVELS[-1], max(attributes - len(LEVELS), 0))
    prevalence = np.concatenate([LEVELS, spread])[:attributes]
    data = rng.standard_normal((items, dim), dtype=np.float32)
    postings = [np.sort(rng.choice(items, max(int(items * p), k), replace=False)) for p in prevalence]
    scores = [rng.random(len(p), dtype=np.float32) for p in postings]
    timings: dict[str, float] = {}

    start = time.perf_counter()
    engine = RestrictedTopK(data, postings, scores)
    timings["vibeset_build_s"] = time.perf_counter() - start
    log(f"vibeset engine built in {timings['vibeset_build_s']:.1f}s ({len(engine.blocks)} attribute blocks)")
    flat = faiss.IndexFlatIP(dim)
    flat.add(data)
    threads = faiss.omp_get_max_threads()
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(data)
    timings["hnsw_build_s"] = time.perf_counter() - start
    log(f"FAISS HNSW (M={hnsw_m}) built in {timings['hnsw_build_s']:.1f}s on {threads} thread(s)")

    faiss.omp_set_num_threads(1)
    user_vectors = rng.standard_normal((queries, dim), dtype=np.float32)
    levels, combinations = [], []
    with threadpool_limits(1):
        for a, level in enumerate(LEVELS[: min(attributes, len(LEVELS))]):
            row = _compare(faiss, engine, data, flat, hnsw, user_vectors, k, [a], [], postings[a])
            levels.append({"prevalence": level, **row})
            log(_line(f"prevalence {level:.1%}", row))
        for label, include, exclude in _combinations(attributes):
            ids = _filter(postings, include, exclude, items)
            if len(ids) < k:
                continue
            row = _compare(faiss, engine, data, flat, hnsw, user_vectors, k, include, exclude, ids)
            combinations.append({"filter": label, "prevalence": len(ids) / items, **row})
            log(_line(label, row))
    return {
        "items": items,
        "dim": dim,
        "attributes": attributes,
        "k": k,
        "queries_per_level": queries,
        "threads": 1,
        "timings": {key: round(value, 2) for key, value in timings.items()},
        "block_bytes": sum(b.nbytes for b in engine.blocks.values()),
        "levels": levels,
        "combinations": combinations,
    }


def _combinations(attributes: int) -> list[tuple[str, list[int], list[int]]]:
    """AND / NOT filters over the fixed levels (attribute i has prevalence LEVELS[i])."""
    if attributes < len(LEVELS):
        return []
    return [("10% AND 5%", [5, 4], []), ("20% AND NOT 10%", [6], [5]), ("20% AND 10% AND NOT 5%", [6, 5], [4]),
            ("5% AND 2% AND NOT 1%", [4, 3], [2])]


def _filter(postings: list[np.ndarray], include: list[int], exclude: list[int], items: int) -> np.ndarray:
    mask = np.ones(items, dtype=bool)
    for a in include:
        keep = np.zeros(items, dtype=bool)
        keep[postings[a]] = True
        mask &= keep
    for a in exclude:
        mask[postings[a]] = False
    return np.flatnonzero(mask)


def _timed(search: Callable[[np.ndarray], np.ndarray], user_vectors: np.ndarray, truth: list[set], k: int) -> dict[str, float]:
    times, recall = [], []
    for q, want in zip(user_vectors, truth):
        t = time.perf_counter()
        got = search(q)
        times.append(time.perf_counter() - t)
        recall.append(len(want & set(got.tolist())) / k)
    return {**_latency(times), "recall": round(float(np.mean(recall)), 4)}


def _compare(faiss: Any, engine: RestrictedTopK, data: np.ndarray, flat: Any, hnsw: Any, user_vectors: np.ndarray, k: int,
             include: list[int], exclude: list[int], ids: np.ndarray) -> dict[str, Any]:
    """vibeset's exact search under one filter against FAISS flat and HNSW with that filter as a selector."""
    items = len(data)
    truth = [set(ids[np.argpartition(-(data[ids] @ q), k - 1)[:k]].tolist()) for q in user_vectors]
    bitmap = np.packbits(np.isin(np.arange(items), ids), bitorder="little")
    selectors = {
        "flat+IDSelectorBatch": (flat, faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids.astype(np.int64)))),
        "flat+IDSelectorBitmap": (flat, faiss.SearchParameters(sel=faiss.IDSelectorBitmap(items, faiss.swig_ptr(bitmap)))),
    }
    for ef in EF_SEARCH:
        selectors[f"hnsw+IDSelectorBitmap ef={ef}"] = (
            hnsw, faiss.SearchParametersHNSW(sel=faiss.IDSelectorBitmap(items, faiss.swig_ptr(bitmap)), efSearch=max(ef, k)))
    row: dict[str, Any] = {"postings": len(ids), "plan": engine.plan(include)}
    row["vibeset"] = _timed(lambda q: engine.search(q, include=include, exclude=exclude, k=k).rows, user_vectors, truth, k)
    row["faiss"] = {name: _timed(lambda q, i=index, p=params: i.search(q[None], k, params=p)[1][0], user_vectors, truth, k)
                    for name, (index, params) in selectors.items()}
    good = {n: r for n, r in row["faiss"].items() if r["recall"] >= 0.95}
    best = min(good, key=lambda n: good[n]["p50_ms"]) if good else None
    row["fastest_faiss_at_recall_0.95"] = best
    row["speedup_p50"] = round(good[best]["p50_ms"] / row["vibeset"]["p50_ms"], 2) if best else None
    del bitmap
    return row


def _line(label: str, row: dict[str, Any]) -> str:
    best = row["fastest_faiss_at_recall_0.95"]
    theirs = f"{row['faiss'][best]['p50_ms']:.3f} ms" if best else "none"
    return (f"{label}: vibeset p50 {row['vibeset']['p50_ms']:.3f} ms (recall {row['vibeset']['recall']}), "
            f"fastest FAISS at recall>=0.95: {best} {theirs}")


def summary_table(result: dict[str, Any]) -> Table:
    table = Table(
        title=f"restricted top-{result['k']}, {result['items']:,} items x {result['dim']}-d, single-threaded "
        f"({result['queries_per_level']} queries per prevalence)"
    )
    for column in ("filter (prevalence)", "plan", "vibeset p50/p99 ms", "recall", "fastest FAISS >= 0.95 recall", "its p50/p99 ms", "speedup"):
        table.add_column(column)
    rows = [(f"{row['prevalence']:.1%}", row) for row in result["levels"]]
    rows += [(f"{row['filter']} ({row['prevalence']:.1%})", row) for row in result.get("combinations", [])]
    for label, row in rows:
        ours = row["vibeset"]
        best = row["fastest_faiss_at_recall_0.95"]
        theirs = row["faiss"][best] if best else None
        table.add_row(
            label,
            row["plan"],
            f"{ours['p50_ms']:.3f} / {ours['p99_ms']:.3f}",
            f"{ours['recall']:.3f}",
            best or "none reaches 0.95",
            f"{theirs['p50_ms']:.3f} / {theirs['p99_ms']:.3f}" if theirs else "-",
            f"{row['speedup_p50']:.1f}x" if row["speedup_p50"] else "-",
        )
    return table
