"""Retrieval verbs: index build, serve, eval-retrieval, recommend, bench retrieval."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..artifacts import artifacts_of
from ..metrics import fmt
from ..pipeline import run_stage
from .app import (JsonOption, WorkspaceOption, app, bootstrap_option, console, fail, print_json, resolve_prefix, stdout,
                  top_k_option, workspace)
from .bench import bench_app

index_app = typer.Typer(help="Build the attribute index that restricted retrieval serves.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Annotations directory (default: the student's labels)."),
    keep: int = typer.Option(3, help="Index versions to keep."),
    workspace_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Index the labels over the collaborative factors and swap the new version in atomically."""
    ws = workspace(workspace_path)
    options = {"keep": keep, **({"labels": artifacts_of(ws).at(annotations)} if annotations else {})}
    outcome, ctx = run_stage(ws, "index", options=options)
    index = ctx.results["index"]
    postings = {name: int(index.post_offsets[a + 1] - index.post_offsets[a]) for a, name in enumerate(index.attributes)}
    summary = {
        "version": index.version,
        "path": str(artifacts_of(ws).get("index").path / "versions" / index.version),
        "items": len(index),
        "users": len(index.user_ids),
        "annotations": index.manifest["annotations"],
        "cold_items": index.manifest["collaborative"]["cold_items"],
        "lineage": index.manifest.get("lineage", {}),
        "postings": postings,
        "run_id": outcome.run_id,
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"index {index.version} -> {summary['path']}: {len(index)} videos, {len(index.user_ids)} users, "
        f"{summary['cold_items']} cold-start videos, labels from {summary['annotations']}",
        highlight=False, markup=False,
    )
    console.print("videos per attribute: " + ", ".join(f"{k} {v}" for k, v in postings.items()), highlight=False, markup=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to bind"),
    port: int = typer.Option(8000, min=1, max=65535, help="port"),
    workers: int = typer.Option(1, help="worker processes (one BLAS thread each)"),
    index: Optional[Path] = typer.Option(None, "--index", help="serve this index directory instead of the workspace's"),
    workspace_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Serve /recommend, /videos/{id}, /attributes, /healthz (bearer auth when $VIBESET_API_TOKEN is set)."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # inherited by the worker processes before they import numpy
    import uvicorn

    from ..serve.api import TARGET_ENV

    if index is not None:
        target = index.resolve()
    else:
        ws = workspace(workspace_path)
        target = ws.root
    os.environ[TARGET_ENV] = str(target)
    from ..serve.api import app_from_env

    app_from_env()  # fail fast here, with a one-line message, if the index is missing
    if as_json:
        print_json({"serving": str(target), "url": f"http://{host}:{port}", "workers": workers})
    else:
        console.print(f"serving {target} on http://{host}:{port} ({workers} worker(s)); docs at /docs")
    uvicorn.run(
        "vibeset.serve.api:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
    )


def _fmt(metric: dict) -> str:
    return fmt(metric["value"], metric["ci"])


@app.command("eval-retrieval")
def eval_retrieval(
    k: int = top_k_option(10, "cut-off K"),
    test_fraction: float = typer.Option(0.1, help="share of the interaction time span held out (latest)"),
    ab: Optional[str] = typer.Option(None, "--ab", help="A/B replay of two index versions 'A,B' (default: previous,current)"),
    bootstrap: int = bootstrap_option(1000),
    workspace_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Offline evaluation on a temporal split: restricted vs unrestricted vs popularity, plus an A/B replay.

    The report is the retrieval-evaluation artifact (read by 'vibeset report').
    """
    from ..retrieval.index import list_versions

    ws = workspace(workspace_path)
    versions = None
    if ab:
        parts = [p.strip() for p in ab.split(",")]
        if len(parts) != 2 or not all(parts):
            fail(f"--ab expects two versions 'A,B' (unique prefixes are enough), got {ab!r}")
        saved = list_versions(artifacts_of(ws).get("index").path)
        versions = tuple(resolve_prefix(part, saved, "index version") for part in parts)
    options = {"k": k, "test_fraction": test_fraction, "n_boot": bootstrap, **({"versions": versions} if versions else {})}
    _, ctx = run_stage(ws, "eval-retrieval", options=options)
    report = ctx.results["report"]
    if as_json:
        print_json(report)
        return
    table = Table(
        title=f"restricted retrieval, temporal split: {report['events']} held-out positives of {report['users']} users, "
        f"{report['queries']} (user, attribute) queries; 95% CIs resample users"
    )
    for column in ("system", f"recall@{k}", f"ndcg@{k}", "intent precision (golden)"):
        table.add_column(column)
    for system, metrics in report["systems"].items():
        precision = metrics["intent_precision"]
        table.add_row(
            system, _fmt(metrics[f"recall@{k}"]), _fmt(metrics[f"ndcg@{k}"]), f"{_fmt(precision)} n={precision['n']}"
        )
    stdout.print(table)
    ab_report = report["ab"]
    if "skipped" in ab_report:
        console.print(f"A/B replay: {ab_report['skipped']}")
        return
    table = Table(title=f"replayed A/B: A={ab_report['a']} vs B={ab_report['b']}, {ab_report['queries']} queries")
    for column in ("metric", "A", "B", "lift B/A [95% CI]"):
        table.add_column(column)
    for metric in (f"recall@{k}", f"ndcg@{k}", "intent_precision"):
        m = ab_report[metric]
        table.add_row(metric, f"{m['a']:.3f}", f"{m['b']:.3f}", f"{m['lift']:+.1%} [{m['ci'][0]:+.1%}, {m['ci'][1]:+.1%}]")
    stdout.print(table)


def _example_users(recommender, n: int) -> list[str]:
    """Users with the longest histories: their inferred vibes are the most telling."""
    lengths = recommender.index.seen_indptr[1:] - recommender.index.seen_indptr[:-1]
    order = sorted(range(len(lengths)), key=lambda u: (-int(lengths[u]), u))
    return [recommender.index.user_ids[u] for u in order[: n * 7 : 7]]


EXAMPLE_INTENTS = (None, "something uplifting but not sappy", "dark,-violent")


@app.command()
def recommend(
    user: Optional[str] = typer.Option(None, "--user", help="user id"),
    intent: Optional[str] = typer.Option(None, "--intent", help="attribute names ('dark,-sad') or free text; omitted: inferred"),
    k: int = top_k_option(5, "how many videos"),
    blend: float = typer.Option(0.0, help="weight of the attribute score in the ranking"),
    examples: int = typer.Option(0, "--examples", help="show N example users instead (inferred, free-text and explicit intents)"),
    workspace_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Personalized restricted recommendations from the workspace's current index."""
    from ..encoder import workspace_encoder
    from ..retrieval.index import load_index
    from ..retrieval.recommender import Recommender

    ws = workspace(workspace_path)
    recommender = Recommender(load_index(artifacts_of(ws).get("index").path), encoder_factory=lambda: workspace_encoder(ws))
    if examples:
        queries = [(u, EXAMPLE_INTENTS[i % len(EXAMPLE_INTENTS)]) for i, u in enumerate(_example_users(recommender, examples))]
    elif user is None:
        fail("--user is required (or --examples N)")
    else:
        queries = [(user, intent)]
    answers = [recommender.recommend(u, recommender.intent(u, text), k=k, blend=blend) for u, text in queries]
    if as_json:
        print_json(answers if examples else answers[0])
        return
    for answer in answers:
        got = answer["intent"]
        how = got.get("query") or got.get("explanation") or ", ".join(got["attributes"])
        console.print(
            f"\nuser {answer['user']} - {got['source']} intent: {how} -> "
            f"attributes {got['attributes'] or 'none'}, excluded {got['excluded'] or 'none'}",
            highlight=False, markup=False,
        )
        for rank, item in enumerate(answer["items"], 1):
            console.print(f"  {rank}. {item['title']}  ({', '.join(item['attributes'])}; score {item['score']:.3f})",
                          highlight=False, markup=False)


@bench_app.command("retrieval")
def bench_retrieval(
    items: int = typer.Option(1_000_000, help="catalog size"),
    dim: int = typer.Option(64, help="embedding dimension"),
    attributes: int = typer.Option(100, help="attributes, prevalence log-spaced over --min/--max-prevalence"),
    queries: int = typer.Option(100, help="queries per prevalence"),
    k: int = top_k_option(100, "cut-off K"),
    hnsw_m: int = typer.Option(32, help="HNSW graph degree"),
    as_json: bool = JsonOption,
) -> None:
    """Exact restricted top-K vs FAISS (flat + IDSelectorBatch, HNSW + IDSelector), single-threaded."""
    from ..retrieval.benchmark import run_benchmark, summary_table

    result = run_benchmark(items=items, dim=dim, attributes=attributes, queries=queries, k=k, hnsw_m=hnsw_m, log=console.print)
    if as_json:
        print_json(result)
    else:
        stdout.print(summary_table(result))
