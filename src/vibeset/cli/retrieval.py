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


def _fmt(metric: dict | None) -> str:
    return fmt(metric["value"], metric.get("ci")) if metric else "-"


@app.command("ranker")
def ranker(
    epochs: Optional[int] = typer.Option(None, min=1, help="training epochs of the sequential model (default: [pipeline] ranker_epochs)"),
    last: int = typer.Option(5, help="each user's last N interactions: the test (set aside) and, before them, validation"),
    k: int = top_k_option(10, "cut-off K of the validation NDCG that picks the defaults"),
    workspace_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Train the sequential (SASRec-style) ranker; pick the default ranker and blend on a validation split."""
    ws = workspace(workspace_path)
    options = {"last": last, "k": k, **({"epochs": epochs} if epochs is not None else {})}
    outcome, ctx = run_stage(ws, "ranker", options=options)
    selection = ctx.results["selection"]
    if as_json:
        print_json({"run_id": outcome.run_id, **ctx.results})
        return
    table = Table(title=f"validation ({selection['split']['kind']}): {selection['queries']} predicted-vibe queries, "
                        f"{selection['users']} users")
    for column in ("ranker", "blend", f"ndcg@{k}", f"recall@{k}"):
        table.add_column(column)
    for row in selection["table"]:
        table.add_row(row["ranker"], f"{row['blend']:g}", _fmt(row[f"ndcg@{k}"]), _fmt(row[f"recall@{k}"]))
    stdout.print(table)
    console.print(outcome.summary, highlight=False, markup=False)


def _split_table(name: str, split: dict, k: int) -> Table:
    table = Table(title=f"{name}: {split['users']} users, {split['events']:,} held-out positives; 95% CIs resample users")
    for column in ("protocol", "system", f"recall@{k}", f"ndcg@{k}", "intent precision (golden)", "coverage"):
        table.add_column(column)
    for protocol, block in split["protocols"].items():
        label = f"{protocol} ({block['queries']:,} q, {block['users']} users)"
        for system, metrics in block["systems"].items():
            setup = block["setup"][system]
            blend = f" @{setup['blend']:g}" if setup["restricted"] and setup["blend"] else ""
            precision = metrics["intent_precision"]
            table.add_row(label, system + blend, _fmt(metrics[f"recall@{k}"]), _fmt(metrics[f"ndcg@{k}"]),
                          f"{_fmt(precision)} n={precision['n']:,}", _fmt(metrics["coverage"]))
            label = ""
    return table


def _intent_line(name: str, intent: dict) -> str:
    if not intent.get("users"):
        return f"{name}: no user with an inferred vibe"
    return (f"{name}: the inferred vibe carries {_fmt(intent['inferred'])} of a user's next positives, the most common "
            f"vibe ({intent['popular_vibe']}) {_fmt(intent['popularity'])}; difference {_fmt(intent['difference'])}; "
            f"over the inferred vibe's base rate {_fmt(intent['inferred_lift'])}x (popularity: 1x) ({intent['users']} users)")


@app.command("eval-retrieval")
def eval_retrieval(
    k: int = top_k_option(10, "cut-off K"),
    last: int = typer.Option(5, help="per-user split: each user's last N interactions are held out"),
    test_fraction: float = typer.Option(0.1, help="temporal split: share of the interaction time span held out (latest)"),
    ab: Optional[str] = typer.Option(None, "--ab", help="A/B replay of two index versions 'A,B' (default: previous,current)"),
    bootstrap: int = bootstrap_option(1000),
    workspace_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Offline evaluation: query vibes predicted from history or from golden labels (never from the
    labels evaluated), per-user and temporal splits, every ranker restricted and not, with CIs.

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
    options = {"k": k, "last": last, "test_fraction": test_fraction, "n_boot": bootstrap, **({"versions": versions} if versions else {})}
    _, ctx = run_stage(ws, "eval-retrieval", options=options)
    report = ctx.results["report"]
    if as_json:
        print_json(report)
        return
    defaults = report["defaults"]
    stdout.print(f"index {report['index_version']}: default ranker {defaults['ranker']}, blend {defaults['blend']:g} "
                  "(chosen on validation)", highlight=False, markup=False)
    for name, split in report["splits"].items():
        stdout.print(_split_table(name, split, k))
        stdout.print(_intent_line("intent model", split["intent"]))
    _print_ab(report["ab"], k)


def _print_ab(ab_report: dict, k: int) -> None:
    if "skipped" in ab_report:
        console.print(f"A/B replay: {ab_report['skipped']}", highlight=False, markup=False)
        return
    table = Table(title=f"replayed A/B (golden-vibe queries): A={ab_report['a']} vs B={ab_report['b']}, {ab_report['queries']} queries")
    for column in ("metric", "A", "B", "lift B/A [95% CI]"):
        table.add_column(column)
    for metric in (f"recall@{k}", f"ndcg@{k}", "intent_precision"):
        m = ab_report[metric]
        table.add_row(metric, fmt(m["a"]), fmt(m["b"]), fmt(m["lift"], m["ci"]))
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
    intent: Optional[str] = typer.Option(None, "--intent", help="vibe names ('dark,-sad') or free text; omitted: inferred"),
    k: int = top_k_option(5, "how many videos"),
    blend: Optional[float] = typer.Option(None, min=0.0, max=10.0, help="weight of the vibe score in the ranking, 0-10 as in the API (default: the index's)"),
    ranker: Optional[str] = typer.Option(None, help="als or sasrec (default: the index's)"),
    fallback: bool = typer.Option(False, "--fallback", help="text matching no vibe answers unrestricted (flagged)"),
    examples: int = typer.Option(0, "--examples", help="show N example users, each with an inferred, a free-text and an explicit intent"),
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
        queries = [(u, text) for u in _example_users(recommender, examples) for text in EXAMPLE_INTENTS]
    elif user is None:
        fail("--user is required (or --examples N)")
    else:
        queries = [(user, intent)]
    answers = [recommender.recommend(u, recommender.intent(u, text, fallback=fallback), k=k, blend=blend, ranker=ranker)
               for u, text in queries]
    if as_json:
        print_json(answers if examples else answers[0])
        return
    for answer in answers:
        _print_answer(answer)


def _print_answer(answer: dict) -> None:
    got = answer["intent"]
    how = got.get("query") or got.get("explanation") or ", ".join(got["matched"])
    flag = " (no vibe matched: unrestricted)" if got.get("fallback") else ""
    stdout.print(
        f"\nuser {answer['user']} - {got['source']} intent: {how} -> matched {', '.join(got['matched']) or 'none'}, "
        f"excluded {', '.join(got['excluded']) or 'none'}, ignored {', '.join(got['ignored']) or 'none'}{flag} "
        f"[{answer['ranker']}, blend {answer['blend']:g}]"
    )
    for rank, item in enumerate(answer["items"], 1):
        stdout.print(f"  {rank}. {item['title']}  ({', '.join(item['attributes'])}; score {item['score']:.3f})")


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
