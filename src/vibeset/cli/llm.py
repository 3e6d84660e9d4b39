"""``vibeset annotate``: label videos with an LLM (or the zero-shot baseline) into an annotations directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..annotate.teacher import local_engine, teacher_slug, write_llm_labels, write_zero_shot_labels
from ..annotators import zero_shot_for, parse_spec
from ..artifacts import Artifact, Stamp, artifacts_of
from ..catalog import Video, catalog_from_frame
from ..golden import workspace_golden
from ..llm import LLMConfig, RunSummary, estimate
from ..llm.distributed import ENGINES, replicas, run_on_ray
from ..runs import Lineage, recorded, taxonomy_in_use
from ..tables import read_table
from ..workspace import Workspace
from .app import JsonOption, WorkspaceOption, app, check_split, console, fail, print_json, split_option, workspace

SPLITS = ("dev", "test", "all", "catalog")
ENGINE_BACKENDS = ("openai", "gemini")


def _videos(ws: Workspace, videos: Optional[Path], split: Optional[str]) -> list[Video]:
    """Videos from a file (a catalog table through the workspace's column mapping, or ids) or a named split."""
    if (videos is None) == (split is None):
        fail(f"give exactly one of --videos FILE or --split {'|'.join(SPLITS)}")
    split = check_split(split, SPLITS)
    if split == "catalog":
        return list(ws.catalog)
    if split is not None:
        gold = workspace_golden(ws).split(None if split == "all" else split)
        return list(ws.catalog.subset(sorted(gold.pairs["video_id"].unique())))
    assert videos is not None
    columns = ws.config.catalog.columns
    if videos.suffix == ".txt":
        ids = [line.strip() for line in videos.read_text(encoding="utf-8").splitlines() if line.strip()]
        return list(ws.catalog.subset(ids))
    raw = read_table(videos, dtype=str)
    if list(raw.columns) == [columns.id]:
        return list(ws.catalog.subset(raw[columns.id].astype(str).str.strip().tolist()))
    return list(catalog_from_frame(raw, columns, videos))


def _config(ws: Workspace, **overrides: object) -> LLMConfig:
    table = {**ws.config.llm, **{key: value for key, value in overrides.items() if value is not None}}
    config = LLMConfig.from_table(table, f"{ws.root / 'vibeset.toml'} [llm]")
    if config.cache is not None:
        config = config.model_copy(update={"cache": ws.path(config.cache)})
    return config


def _zero_shot(ws: Workspace, videos: list[Video], out: Artifact, replace: bool, dry_run: bool) -> dict:
    if dry_run:
        return {"backend": "zero-shot", "videos": len(videos), "calls": 0, "cost_usd": 0.0}
    started = time.time()
    dev = workspace_golden(ws).split("dev")
    with recorded(ws, "annotate", {"backend": "zero-shot", "videos": len(videos), "out": str(out.path)}) as record:
        annotator, taxonomy = zero_shot_for(ws, parse_spec("zero-shot"), dev)
        summary = write_zero_shot_labels(annotator, videos, taxonomy, out, Stamp(record.run_id, stage="annotate"), replace=replace)
        record.wrote("annotations", out)
    return {"backend": "zero-shot", "run_id": record.run_id, "out_dir": str(out.path), **summary,
            "elapsed_s": time.time() - started}


def _progress() -> tuple[Progress, Callable[[RunSummary], None]]:
    progress = Progress(
        TextColumn("annotate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} videos/s"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[tokens]:,} tok  ${task.fields[cost]}  retries {task.fields[retries]}  failed {task.fields[failed]}"),
        console=console,
    )
    task = progress.add_task("annotate", total=None, rate=0.0, tokens=0, cost="-", retries=0, failed=0)

    def update(summary: RunSummary) -> None:
        worked = summary.annotated + summary.failed
        progress.update(
            task,
            total=summary.total,
            completed=summary.finished,
            rate=worked / summary.elapsed_s if summary.elapsed_s > 0 else 0.0,
            tokens=summary.input_tokens + summary.output_tokens,
            cost="-" if summary.cost_usd is None else f"{summary.cost_usd:.4f}",
            retries=summary.retries,
            failed=summary.failed,
        )

    return progress, update


@app.command()
def annotate(
    backend: str = typer.Option(..., "--backend", help="openai (any OpenAI-compatible server), gemini, or zero-shot."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name, passed through to the provider."),
    base_url: Optional[List[str]] = typer.Option(None, "--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1; repeatable with --engine ray (replicas of one model, shards round-robin)."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Catalog-format CSV/JSONL/Parquet, or ids (.txt or a table with only the id column)."),
    split: Optional[str] = split_option(None, SPLITS, "Golden dev / test / all videos, or the whole catalog."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: ARTIFACTS/annotations/<backend-model>); re-running into it resumes the job."),
    replace: bool = typer.Option(False, "--replace", help="zero-shot: relabel an --out that holds another version's labels."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Estimate calls, tokens and cost; call nothing."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Calls in flight (default: llm.concurrency in vibeset.toml, else 16)."),
    response_format: Optional[str] = typer.Option(None, "--response-format", help="json_schema (default), json_object or none."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Self-consistency: answers per video."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames sampled from each video's media file."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N videos."),
    engine: str = typer.Option("local", "--engine", help="local (one process) or ray (actors over catalog shards)."),
    shards: Optional[int] = typer.Option(None, "--shards", help="Ray: catalog shards (default 4 per worker)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray: actors, each with --concurrency calls in flight (default max(2, endpoints))."),
    ray_cpus: Optional[int] = typer.Option(None, "--ray-cpus", help="Ray: CPUs of the local Ray started (default all cores)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Annotate videos with every taxonomy attribute; resumable, cached, costed.

    Writes OUT/part-*.parquet (annotations, readable by 'vibeset evaluate --annotator annotations:OUT'),
    OUT/failures/ and OUT/manifest.json. API keys come only from environment variables.
    """
    ws = workspace(ws_path)
    if backend not in ("zero-shot", *ENGINE_BACKENDS):
        fail(f"--backend must be zero-shot, openai or gemini, not {backend!r}")
    if backend != "zero-shot" and not model:
        fail(f"--model is required for --backend {backend}")
    if limit is not None and limit < 1:
        fail(f"--limit must be a positive number of videos, got {limit}")
    chosen = _videos(ws, videos, split)[:limit]
    slug = teacher_slug(backend if backend == "zero-shot" else f"llm:{backend}:{model}")
    target = artifacts_of(ws).at(out) if out else artifacts_of(ws).annotations(slug)
    if backend == "zero-shot":
        result = _zero_shot(ws, chosen, target, replace, dry_run)
        if as_json:
            print_json(result)
        elif not dry_run:
            console.print(f"zero-shot labelled {result['annotated']:,} videos ({result['rows']:,} annotations) "
                          f"in {result['elapsed_s']:.0f} s -> {target.path}", highlight=False, markup=False)
        else:
            console.print(f"zero-shot: {result['videos']:,} videos, no calls, no cost", highlight=False, markup=False)
        return
    if engine not in ENGINES:
        fail(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "local" and len(base_url or []) > 1:
        fail("several --base-url need --engine ray")
    config = _config(ws, concurrency=concurrency, response_format=response_format, samples=samples, frames=frames)
    llms = replicas([config.backend(backend, model, url) for url in base_url or [None]])
    taxonomy = taxonomy_in_use(ws)
    if dry_run:
        result = estimate(chosen, taxonomy, llms[0], config, target.path).to_dict()
        if as_json:
            print_json(result)
        else:
            cost = "unknown (no [llm.prices] entry for this model)" if result["cost_usd"] is None else f"${result['cost_usd']:,.2f}"
            console.print(
                f"{result['videos']:,} videos: {result['already_annotated']:,} already annotated, {result['cached']:,} cached; "
                f"{result['calls']:,} calls, {result['input_tokens']:,} input + {result['output_tokens']:,} output tokens, "
                f"cost {cost}"
            )
        return
    progress, update = _progress()
    if engine == "ray":
        def execute(directory: Path, run_id: str) -> RunSummary:
            return run_on_ray(chosen, taxonomy, llms, config, directory, shards=shards, workers=workers,
                              num_cpus=ray_cpus, run_id=run_id, progress=update)
    else:
        execute = local_engine(chosen, taxonomy, llms[0], config, progress=update)
    out = target.path
    try:
        with progress, recorded(ws, "annotate", {"backend": backend, "model": model, "engine": engine,
                                                 "videos": len(chosen), "out": str(out)}) as record:
            summary = write_llm_labels(taxonomy, llms[0].model, target, Stamp(record.run_id, stage="annotate"), execute)
            record.wrote("annotations", target)
            record.cost_usd = summary.cost_usd
            record.lineage = Lineage(taxonomy.version, summary.prompt_version, summary.model)
    except KeyboardInterrupt:
        fail(f"interrupted; finished videos are saved in {out}; re-run the same command to resume", code=130)
    result = summary.to_dict()
    if as_json:
        print_json(result)
    else:
        cost = "-" if summary.cost_usd is None else f"${summary.cost_usd:.4f}"
        console.print(
            f"{summary.annotated} annotated, {summary.skipped} already done, {summary.failed} failed "
            f"(see {out}/failures), {summary.calls} calls, {summary.cache_hits} cache hits, {summary.retries} retries, "
            f"{summary.input_tokens + summary.output_tokens:,} tokens, cost {cost}, {summary.elapsed_s:.1f} s -> {out}",
            highlight=False, markup=False,
        )
