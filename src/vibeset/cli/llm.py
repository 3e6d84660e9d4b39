"""``vibeset annotate``: label videos with an LLM (or the zero-shot baseline) into an annotations directory."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import typer

from ..annotate.teacher import local_engine, teacher_slug, write_llm_labels, write_zero_shot_labels
from ..annotators import zero_shot_for, parse_spec
from ..artifacts import Artifact, Stamp, artifacts_of
from ..catalog import Video, catalog_from_frame
from ..golden import workspace_golden
from ..llm import LLMConfig, RunSummary, estimate, read_failures
from ..llm.distributed import ENGINES, replicas, run_on_ray
from ..llm.fewshot import workspace_prompt
from ..progress import progress_bar
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


@contextmanager
def _progress(total: int) -> Iterator[Callable[[RunSummary], None]]:
    """The shared progress bar, fed from the engine's live ``RunSummary``."""
    with progress_bar(total, "annotate", detail=True) as advance:
        done = 0

        def update(summary: RunSummary) -> None:
            nonlocal done
            worked = summary.annotated + summary.failed
            rate = worked / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
            cost = "-" if summary.cost_usd is None else f"${summary.cost_usd:.4f}"
            batches = f"  {summary.batches} batches" if summary.mode == "batch" else ""
            detail = (f"{rate:.1f} videos/s  {summary.input_tokens + summary.output_tokens:,} tok  {cost}  "
                      f"retries {summary.retries}  failed {summary.failed}{batches}")
            advance(summary.finished - done, total=summary.total or None, detail=detail)
            done = summary.finished

        yield update


def _print_estimate(result: dict[str, Any]) -> None:
    def money(value: float | None) -> str:
        if value is None:
            return "unknown (no [llm.prices] entry for this model)"
        return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"

    console.print(
        f"{result['videos']:,} videos: {result['already_annotated']:,} already annotated, {result['cached']:,} cached; "
        f"{result['calls']:,} calls, {result['input_tokens']:,} input + {result['output_tokens']:,} output tokens"
        + (f" ({result['shots']} few-shot examples per video)" if result["shots"] else ""),
        highlight=False, markup=False,
    )
    console.print(f"cost online {money(result['cost_usd'])}, batch {money(result['batch_cost_usd'])} "
                  f"(provider batch mode, up to 24 h; --batch)", highlight=False, markup=False)


def _report(summary: RunSummary, out: Path, as_json: bool) -> None:
    """Print the summary; every video failing is an error (exit 1) that says how many and why."""
    if as_json:
        print_json(summary.to_dict())
    else:
        cost = "-" if summary.cost_usd is None else f"${summary.cost_usd:.4f}"
        batches = f", {summary.batches} provider batches" if summary.mode == "batch" else ""
        console.print(
            f"{summary.annotated} annotated, {summary.skipped} already done, {summary.failed} failed "
            f"(see {out}/failures), {summary.calls} calls, {summary.cache_hits} cache hits, {summary.retries} retries"
            f"{batches}, {summary.input_tokens + summary.output_tokens:,} tokens, cost {cost}, "
            f"{summary.elapsed_s:.1f} s -> {out}",
            highlight=False, markup=False,
        )
    if summary.failed and not summary.annotated:
        kinds = read_failures(out)
        kinds = kinds[kinds["run_id"] == summary.run_id]["kind"].value_counts()
        why = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        fail(f"all {summary.failed} videos to annotate failed ({why}); see {out}/failures", code=1)


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
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N videos (N >= 1)."),
    batch: bool = typer.Option(False, "--batch", help="Use the provider's batch API (OpenAI Batch, Gemini Batch Mode): half price, up to 24 h; re-run to resume."),
    shots: Optional[int] = typer.Option(None, "--shots", help="Few-shot examples per video, chosen from golden dev (default: llm.shots, else 0)."),
    engine: str = typer.Option("local", "--engine", help="local (one process) or ray (actors over catalog shards)."),
    shards: Optional[int] = typer.Option(None, "--shards", help="Ray: catalog shards (default 4 per worker)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray: actors, each with --concurrency calls in flight (default max(2, endpoints))."),
    ray_cpus: Optional[int] = typer.Option(None, "--ray-cpus", help="Ray: CPUs of the local Ray started (default all cores)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Annotate videos with every taxonomy attribute; resumable, cached, costed.

    Writes OUT/part-*.parquet (annotations, readable by 'vibeset evaluate --annotator annotations:OUT'),
    OUT/failures/ and OUT/manifest.json. API keys come only from environment variables. Exits 1 when
    every video to annotate failed.
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
    config = _config(ws, concurrency=concurrency, response_format=response_format, samples=samples, frames=frames,
                     shots=shots, mode="batch" if batch else None)
    if engine == "ray" and (config.mode == "batch" or config.shots):
        fail("--engine ray runs online without few-shot examples; drop --batch / --shots (or use --engine local)")
    llms = replicas([config.backend(backend, model, url) for url in base_url or [None]])
    taxonomy = taxonomy_in_use(ws)
    prompt = workspace_prompt(ws, taxonomy, config)
    if dry_run:
        result = estimate(chosen, taxonomy, llms[0], config, target.path, prompt=prompt).to_dict()
        print_json(result) if as_json else _print_estimate(result)
        return
    out = target.path
    try:
        with _progress(len(chosen)) as update, recorded(ws, "annotate", {
            "backend": backend, "model": model, "engine": engine, "mode": config.mode, "shots": config.shots,
            "videos": len(chosen), "out": str(out),
        }) as record:
            if engine == "ray":
                def execute(directory: Path, run_id: str) -> RunSummary:
                    return run_on_ray(chosen, taxonomy, llms, config, directory, shards=shards, workers=workers,
                                      num_cpus=ray_cpus, run_id=run_id, progress=update)
            else:
                execute = local_engine(chosen, taxonomy, llms[0], config, progress=update, prompt=prompt)
            summary = write_llm_labels(taxonomy, llms[0].model, target, Stamp(record.run_id, stage="annotate"), execute)
            record.wrote("annotations", target)
            record.cost_usd = summary.cost_usd
            record.lineage = Lineage(taxonomy.version, summary.prompt_version, summary.model)
    except KeyboardInterrupt:
        fail(f"interrupted; finished videos are saved in {out}; re-run the same command to resume", code=130)
    _report(summary, out, as_json)
