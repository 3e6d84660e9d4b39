"""The pipeline: every stage with its inputs and outputs, run like make (``vibeset run``).

    golden          judgements + reviews + taxonomy + catalog       -> golden
    embed           catalog                                          -> shards
    cf              interactions + shards                            -> cf
    teacher         golden + shards + cf (+ LLM runs present)        -> annotations/<teacher> (evidence: + its model)
    silver          teacher + golden + interactions                  -> silver/<teacher>
    distill         silver + shards + cf + golden                    -> student
    label           student + shards                                 -> annotations/student
    ranker          labels + cf + shards + interactions              -> ranker
    index           labels + cf (+ ranker)                           -> index
    evaluate        golden + teacher + labels                        -> metrics
    eval-retrieval  index + shards + golden (+ ranker)               -> retrieval
    report          metrics + student + retrieval + index            -> report

A stage's fingerprint hashes its name, the vibeset version, the settings it reads, the content
ids of its input artifacts and the sha256 of its source files. A stage whose outputs exist, still
hash to their manifests, and carry that fingerprint is up to date and skipped. Each stage that
runs is a recorded run (a child of the pipeline's run); every CLI verb of a stage runs it through
``run_stage``, so a verb and ``vibeset run`` write the same artifacts the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .annotate.silver import build_silver, sample_catalog
from .annotate.teacher import local_engine, teacher_slug, write_llm_labels, write_zero_shot_labels, zero_shot_teacher
from .annotation import read_annotations
from .artifacts import Artifact, Artifacts, Stamp, artifacts_of, vibeset_version
from .errors import ConfigError
from .evaluation import evaluate_all, write_metrics
from .golden import save_golden, workspace_golden
from .hashing import content_hash, file_sha256
from .interactions import workspace_interactions
from .metrics import fmt
from .reviews import reviews_path
from .runs import Lineage, Run, golden_split, recorded, taxonomy_in_use
from .shards import shard_files, write_shards
from .taxonomy import Taxonomy
from .workspace import PipelineConfig, Workspace

TEACHER_KINDS = ("evidence", "zero-shot", "llm")


@dataclass
class Context:
    """What a stage sees: the workspace, its artifacts, settings, options from a CLI verb, and its run."""

    workspace: Workspace
    config: PipelineConfig
    options: dict[str, Any] = field(default_factory=dict)  # a verb's choices: part of the fingerprint
    progress: Callable[[int, int], None] | None = None
    results: dict[str, Any] = field(default_factory=dict)  # what a stage hands back to its verb
    run: Run | None = None
    fingerprint: str = ""
    inputs: dict[str, Artifact] = field(default_factory=dict)

    @property
    def artifacts(self) -> Artifacts:
        return artifacts_of(self.workspace)

    def taxonomy(self) -> Taxonomy:
        return taxonomy_in_use(self.workspace)

    def stamp(self, **inputs: Artifact) -> Stamp:
        """A stamp for an output of the running stage (its inputs default to the stage's)."""
        assert self.run is not None
        return Stamp(self.run.run_id, stage=self.run.kind, fingerprint=self.fingerprint, inputs=inputs or self.inputs)

    def teacher_spec(self) -> str:
        spec = self.options.get("teacher") or self.config.teacher
        if not (spec in ("evidence", "zero-shot") or spec.startswith("llm:") and spec.count(":") >= 2):
            raise ConfigError(f"teacher must be evidence, zero-shot or llm:BACKEND:MODEL, got {spec!r}")
        return spec

    def teacher(self) -> Artifact:
        return self.artifacts.annotations(teacher_slug(self.teacher_spec()))

    def labels(self) -> Artifact:
        """The labels the index serves: the student's bulk labels, or what a verb named."""
        return self.options.get("labels") or self.artifacts.annotations("student")


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    inputs: Callable[[Context], dict[str, Artifact]]
    outputs: Callable[[Context], dict[str, Artifact]]
    run: Callable[[Context], str]
    sources: Callable[[Context], dict[str, Any]] = lambda ctx: {}
    settings: tuple[str, ...] = ()


# -- sources and fingerprints --------------------------------------------------------------------------
_HASHES: dict[tuple[str, int, int], str] = {}


def _file_id(path: Path) -> str:
    """sha256 of a source file, remembered per (path, size, mtime) within the process."""
    if not path.exists():
        return "absent"
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(str(path))
    return _HASHES[key]


def _catalog_sources(ctx: Context) -> dict[str, Any]:
    ws = ctx.workspace
    return {"catalog": ws.path(ws.config.catalog.path), "catalog_columns": ws.config.catalog.columns.model_dump()}


def _golden_sources(ctx: Context) -> dict[str, Any]:
    ws = ctx.workspace
    judgements = ws.require_judgements()
    return {**_catalog_sources(ctx), "judgements": ws.path(judgements.path), "reviews": reviews_path(ws),
            "rules": judgements.model_dump(mode="json"), "taxonomy": ctx.taxonomy().version}


def _tag_sources(ctx: Context) -> dict[str, Any]:
    ws = ctx.workspace
    return {**{f"tags:{t.name}": ws.path(t.path) for t in ws.config.tag_sources},
            "tag_sources": [t.model_dump(mode="json") for t in ws.config.tag_sources]}


def _cf_input(ctx: Context) -> dict[str, Artifact]:
    """The collaborative model, where the workspace has interactions to fit one."""
    return {"cf": ctx.artifacts.get("cf")} if ctx.workspace.config.interactions is not None else {}


def _teacher_inputs(ctx: Context) -> dict[str, Artifact]:
    inputs = {"golden": ctx.artifacts.get("golden")}
    if ctx.teacher_spec() == "evidence":
        from .annotate.evidence import llm_annotations

        inputs.update({"shards": ctx.artifacts.get("shards"), **_cf_input(ctx)})
        inputs.update({f"llm:{name}": a for name, a in llm_annotations(ctx.artifacts, ctx.taxonomy()).items()})
    return inputs


def _teacher_outputs(ctx: Context) -> dict[str, Artifact]:
    evidence = {"model": ctx.artifacts.get("evidence")} if ctx.teacher_spec() == "evidence" else {}
    return {"teacher": ctx.teacher(), **evidence}


def _interaction_sources(ctx: Context) -> dict[str, Any]:
    ws = ctx.workspace
    interactions = ws.require_interactions()
    return {"interactions": ws.path(interactions.path), "columns": interactions.columns.model_dump()}


def _index_sources(ctx: Context) -> dict[str, Any]:
    from .retrieval.index import FORMAT  # a new index format rebuilds the index

    return {**_interaction_sources(ctx), "index_format": FORMAT}


def fingerprint(ctx: Context, stage: Stage, inputs: Mapping[str, Artifact]) -> str:
    sources = {name: _file_id(value) if isinstance(value, Path) else value for name, value in stage.sources(ctx).items()}
    settings = {key: getattr(ctx.config, key) for key in stage.settings}
    ids = {name: artifact.complete_manifest().content_id for name, artifact in inputs.items()}
    options = {k: str(v.path) if isinstance(v, Artifact) else v for k, v in ctx.options.items()}
    return content_hash([stage.name, vibeset_version(), settings, ids, sources, options], 16)


# -- the stages ----------------------------------------------------------------------------------------
def _golden(ctx: Context) -> str:
    golden = workspace_golden(ctx.workspace)
    if golden.pairs.empty:
        raise ConfigError("the golden set is empty: no judged pair maps to a taxonomy attribute and a catalog video")
    save_golden(golden, ctx.artifacts.get("golden"), ctx.stamp())
    s = golden.summary()
    unmatched = f"; {s['unmatched_judgements']:,} judgements with tags that match no vibe left out" if s["unmatched_judgements"] else ""
    return (f"{s['pairs']:,} pairs, {s['videos']:,} videos, {s['attributes']} vibes, prevalence {s['prevalence']:.2f} "
            f"({golden.version}){unmatched}{_golden_warnings(golden, ctx.taxonomy().names)}")


MIN_SPLIT_VIDEOS = 20  # judged videos per golden split below which figures are noise (docs/workspace.md)


def _golden_warnings(golden: Any, names: Sequence[str]) -> str:
    """Say when the golden set is too small for what later stages do with it."""
    out = []
    for split in ("dev", "test"):
        videos = golden.pairs.loc[golden.pairs["split"] == split, "video_id"].nunique()
        if videos < MIN_SPLIT_VIDEOS:
            out.append(f"golden {split} has {videos} judged videos (thresholds and scores need >= {MIN_SPLIT_VIDEOS})")
    missing = sorted(set(names) - set(golden.pairs.loc[golden.pairs["split"] == "dev", "attribute"]))
    if missing:
        out.append(f"no golden dev pair for {', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}")
    if not (golden.pairs["n_raters"] >= 3).any():
        out.append("no pair has 3 or more raters, so there is no single-rater baseline")
    return "".join(f"; warning: {w}" for w in out)


def _embed(ctx: Context) -> str:
    from .encoder import workspace_encoder

    encoder = workspace_encoder(ctx.workspace)
    write_shards(ctx.workspace.catalog, encoder, ctx.artifacts.get("shards"), ctx.stamp())
    return f"{len(ctx.workspace.catalog):,} videos encoded with {encoder.name}"


def _cf(ctx: Context) -> str:
    from .retrieval.collaborative import CollaborativeModel, save_collaborative
    from .shards import read_embeddings

    ids, content, _ = read_embeddings(ctx.inputs["shards"])
    interactions = workspace_interactions(ctx.workspace)
    model = CollaborativeModel(factors=ctx.config.cf_factors, seed=ctx.config.seed).fit(interactions, ids, content)
    save_collaborative(model, ctx.artifacts.get("cf"), ctx.stamp())
    many = (f"; warning: cf_factors {ctx.config.cf_factors} is not below the {len(model.user_ids_)} users: lower it in [pipeline]"
            if ctx.config.cf_factors >= len(model.user_ids_) else "")
    return f"{len(model.user_ids_):,} users x {len(ids):,} videos, {int(model.cold_.sum()):,} cold videos from their text{many}"


def _golden_videos(ctx: Context) -> list:
    golden = workspace_golden(ctx.workspace)
    return list(ctx.workspace.catalog.subset(sorted(set(golden.pairs["video_id"]) & set(ctx.workspace.catalog.ids))))


def _llm(ctx: Context, spec: str) -> tuple[Any, Any, Any]:
    from .llm.config import LLMConfig
    from .llm.fewshot import workspace_prompt

    _, backend, model = spec.split(":", 2)
    config = LLMConfig.from_table(dict(ctx.workspace.config.llm), f"{ctx.workspace.config_file} [llm]")
    return config.backend(backend, model), config, workspace_prompt(ctx.workspace, ctx.taxonomy(), config)


def _evidence_teacher(ctx: Context) -> str:
    from .annotate.evidence import EvidenceTeacher, workspace_evidence, write_labels
    from .progress import status

    taxonomy = ctx.taxonomy()
    llm = {name[4:]: a for name, a in ctx.inputs.items() if name.startswith("llm:")}
    evidence = workspace_evidence(ctx.workspace, taxonomy, shards=ctx.inputs["shards"], collaborative=ctx.inputs.get("cf"), llm=llm)
    with status("evidence teacher: cross-validating on golden dev") as update:
        teacher = EvidenceTeacher(objective=ctx.options.get("objective") or ctx.config.distill_objective,
                                  base_rate=ctx.config.base_rate, progress=update)
        teacher.fit(evidence, golden_split(ctx.workspace, "dev"), taxonomy)
    teacher.save(ctx.artifacts.get("evidence"), ctx.stamp())
    write_labels(teacher.annotate(evidence, taxonomy, run_id=ctx.run.run_id), teacher, ctx.teacher(), ctx.stamp())
    chosen = teacher.ablation_[0]
    return (f"evidence {teacher.version} ({', '.join(g for g in evidence.groups if teacher.params_.weight(g))}"
            f"{'; stacked on ' + ', '.join(llm) if teacher.stacked_ is not None else ''}): dev out-of-fold AUC "
            f"{chosen['micro_auc']:.3f} micro, {chosen['macro_auc']:.3f} macro; labelled {len(evidence.ids):,} videos")


def _teacher(ctx: Context) -> str:
    spec, taxonomy = ctx.teacher_spec(), ctx.taxonomy()
    out = ctx.teacher()
    if spec == "evidence":
        return _evidence_teacher(ctx)
    if spec == "zero-shot":
        annotator = zero_shot_teacher(ctx.workspace, taxonomy, workspace_golden(ctx.workspace).split("dev"))
        annotator.save(ctx.artifacts.get("zero-shot"), ctx.stamp())
        videos = list(ctx.workspace.catalog)
        write_zero_shot_labels(annotator, videos, taxonomy, out, ctx.stamp(), replace=True)
        return f"zero-shot {annotator.version} labelled {len(videos):,} videos with taxonomy {taxonomy.version}"
    backend, config, prompt = _llm(ctx, spec)
    videos = _golden_videos(ctx)
    summary = write_llm_labels(taxonomy, backend.model, out, ctx.stamp(),
                               local_engine(videos, taxonomy, backend, config, prompt=prompt))
    return f"{spec}: {summary.annotated:,} golden videos annotated, {summary.failed} failed, cost {fmt(summary.cost_usd)}"


def _silver(ctx: Context) -> str:
    ws, spec, taxonomy = ctx.workspace, ctx.teacher_spec(), ctx.taxonomy()
    test = set(workspace_golden(ws).split("test").pairs["video_id"]) if ws.config.judgements else set()
    sample = sample_catalog(ws, ctx.config.silver_sample, seed=ctx.config.seed, exclude=test)
    fill = None
    if spec.startswith("llm:"):
        backend, config, prompt = _llm(ctx, spec)
        fill = lambda videos, directory, run_id: local_engine(videos, taxonomy, backend, config, prompt=prompt)(  # noqa: E731
            directory, run_id)
    stamp = ctx.stamp()
    stamp.meta = {"teacher": spec}
    summary = build_silver(ws, sample, taxonomy, ctx.inputs["teacher"], ctx.artifacts.get("silver", teacher_slug(spec)),
                           stamp, annotate_missing=fill)
    return (f"{summary['videos']:,} videos ({summary['copied']:,} from the teacher's labels, {summary['annotated']:,} "
            f"annotated now), {summary['strata']} strata, {summary['positive_share']:.1%} positive"
            + (f"; {sample.shortfall}" if sample.shortfall else ""))


def _distill(ctx: Context) -> str:
    from .distill.distillation import run_distillation

    options = {k: ctx.options[k] for k in ("groups", "student", "router", "frames", "n_boot") if k in ctx.options}
    if "model" in ctx.inputs:  # the evidence teacher: calibrated on golden dev, with out-of-fold scores there
        from .annotate.evidence import heldout_scores

        options["heldout"] = heldout_scores(ctx.inputs["model"])
    report = run_distillation(
        ctx.workspace, silver=ctx.inputs["silver"], shards=ctx.inputs["shards"], collaborative=ctx.inputs.get("cf"),
        teacher=ctx.inputs["teacher"], out=ctx.artifacts.get("student"), stamp=ctx.stamp(),
        objective=ctx.options.get("objective") or ctx.config.distill_objective, base_rate=ctx.config.base_rate,
        max_auc_loss=ctx.options.get("max_auc_loss", ctx.config.max_auc_loss), **options,
    )
    ctx.results["report"] = report
    dev = report["dev"]
    teacher = f" vs its teacher's {dev['teacher']['micro_auc']:.3f}" if "teacher" in dev else ""
    return (f"student {report['student']['version']} ({'+'.join(report['student']['lineage']['feature_groups'])}): golden dev "
            f"AUC {dev['student']['micro_auc']:.3f}{teacher}; AUC {report['agreement']['auc_vs_teacher_labels']:.3f} against "
            f"the teacher's labels on {report['agreement']['silver_videos']:,} cross-fitted silver videos")


def _label(ctx: Context) -> str:
    from .scale.label import label

    shards = [str(path) for path in shard_files(ctx.inputs["shards"])] if "videos" not in ctx.options else ctx.options["videos"]
    summary = label(
        ctx.options.get("model") or ctx.inputs["student"].path, shards, ctx.labels(), ctx.stamp(),
        progress=ctx.progress,
        engine=ctx.options.get("engine", "local"), workers=ctx.options.get("workers"),
        batch_rows=ctx.options.get("batch_rows", 8192), wave=ctx.options.get("wave", 8),
        replace=ctx.options.get("replace", True),
    )
    ctx.results["summary"] = summary
    return (f"{summary['videos']:,} videos in {summary['shards_labelled']} shards ({summary['shards_skipped']} already done), "
            f"{summary['videos_per_s']:,.0f} videos/s")


def _ranker(ctx: Context) -> str:
    from .retrieval.ranker import train_ranker

    settings = {"epochs": ctx.config.ranker_epochs,
                **{key: ctx.options[key] for key in ("epochs", "dim", "max_len", "layers", "history") if key in ctx.options}}
    outcome = train_ranker(ctx.workspace, ctx.inputs["labels"], ctx.inputs["cf"], ctx.inputs["shards"],
                           ctx.artifacts.get("ranker"), ctx.stamp(), settings={"seed": ctx.config.seed, **settings},
                           k=ctx.options.get("k", 10), last=ctx.options.get("last", 5))
    ctx.results.update(outcome)
    chosen, k = outcome["selection"]["chosen"], outcome["selection"]["split"]["k"]
    best = max(outcome["selection"]["table"], key=lambda r: r[f"ndcg@{k}"]["value"])
    return (f"sasrec trained in {outcome['train_seconds']:.0f} s; validation picks {chosen['ranker']} at blend "
            f"{chosen['blend']:g} (NDCG@{k} {fmt(best[f'ndcg@{k}']['value'])})")


def _ranker_input(ctx: Context) -> dict[str, Artifact]:
    """The ranker, when one was trained (an index over labels and ALS alone is still an index)."""
    ranker = ctx.artifacts.get("ranker")
    return {"ranker": ranker} if ranker.exists() else {}


def _index(ctx: Context) -> str:
    from .retrieval.build import build_workspace_index, save_index

    index = build_workspace_index(ctx.workspace, ctx.inputs["labels"], ctx.inputs["cf"], ctx.inputs.get("ranker"))
    save_index(index, ctx.artifacts.get("index"), ctx.stamp(), keep=ctx.options.get("keep", 3))
    ctx.results["index"] = index
    lengths = np.diff(index.post_offsets)
    empty = [name for name, n in zip(index.attributes, lengths) if n == 0]
    none = f"; warning: no video carries {', '.join(empty)}: restricted retrieval for it returns nothing" if empty else ""
    return (f"index {index.version}: {len(index):,} videos, {len(index.user_ids):,} users; videos per vibe "
            f"{int(lengths.min()):,}-{int(lengths.max()):,} (median {int(np.median(lengths)):,}){none}")


def _evaluate(ctx: Context) -> str:
    test = golden_split(ctx.workspace, "test", final=True, purpose="vibeset run: evaluate")
    ids = set(test.pairs["video_id"])
    tables, sources = {}, {}
    for name, artifact in (("teacher", ctx.inputs["teacher"]), ("student", ctx.inputs.get("labels"))):
        if artifact is not None:
            frame = read_annotations(artifact)
            tables[name] = frame[frame["video_id"].isin(ids)]
            sources[name] = str(artifact.path)
    report = evaluate_all(test, tables, n_boot=ctx.options.get("n_boot", 500))
    for name, path in sources.items():
        report["annotators"][name]["labels"] = path
    report["golden"].update(split="test", version=workspace_golden(ctx.workspace).version)
    report["taxonomy_version"] = ctx.taxonomy().version
    write_metrics(report, ctx.artifacts.get("metrics"), ctx.stamp())
    return "; ".join(f"{name} head-to-head MCC {fmt(_h2h(report, name))}" for name in report["annotators"])


def _h2h(report: Mapping[str, Any], name: str) -> float | None:
    return report["annotators"][name].get("head_to_head", {}).get("micro", {}).get("mcc")


def _eval_retrieval(ctx: Context) -> str:
    from .progress import progress_bar
    from .retrieval.evaluation import evaluate_workspace, write_evaluation
    from .retrieval.sequential import PARAMS as SEQUENTIAL_PARAMS

    versions = ctx.options.get("versions")
    ranker = ctx.inputs.get("ranker")
    meta = ranker.complete_manifest().meta if ranker else {}
    with progress_bar(None, "answering held-out queries") as advance:
        report = evaluate_workspace(
            ctx.workspace, ctx.inputs["index"], ctx.inputs["shards"],
            sequential={key: meta[key] for key in SEQUENTIAL_PARAMS if key in meta} if ranker else None,
            blends=meta.get("selection", {}).get("blends", {}), k=ctx.options.get("k", 10), last=ctx.options.get("last", 5),
            test_fraction=ctx.options.get("test_fraction", 0.1), versions=versions, n_boot=ctx.options.get("n_boot", 1000),
            progress=advance)
    if ranker:
        report["selection"] = meta.get("selection", {})
    write_evaluation(report, ctx.artifacts.get("retrieval-evaluation"), ctx.stamp())
    ctx.results["report"] = report
    k = report["k"]
    systems = report["systems"]
    return ", ".join(f"{name} recall@{k} {fmt(values[f'recall@{k}']['value'])}" for name, values in systems.items())


def _report(ctx: Context) -> str:
    from .report import write_report

    path, sections = write_report(ctx.workspace, ctx.stamp(), ctx.options.get("runs", ()), metrics=ctx.options.get("metrics"),
                                  n_boot=ctx.options.get("n_boot", 500))
    ctx.results["sections"] = sections
    return f"{path} ({path.stat().st_size / 1024:.0f} KiB, {sum(len(s.figures) for s in sections)} figures)"


def _a(kind: str, name: str = "") -> Callable[[Context], Artifact]:
    return lambda ctx: ctx.artifacts.get(kind, name)


STAGES: tuple[Stage, ...] = (
    Stage("golden", "the golden set and rater agreement", lambda ctx: {}, lambda ctx: {"golden": ctx.artifacts.get("golden")},
          _golden, _golden_sources),
    Stage("embed", "the catalog as shards with text embeddings", lambda ctx: {}, lambda ctx: {"shards": ctx.artifacts.get("shards")},
          _embed, _catalog_sources, ("encoder",)),
    Stage("cf", "collaborative user and item factors", lambda ctx: {"shards": ctx.artifacts.get("shards")},
          lambda ctx: {"cf": ctx.artifacts.get("cf")}, _cf, _interaction_sources, ("cf_factors", "seed")),
    Stage("teacher", "the teacher labels the catalog (or the golden videos, for an LLM)",
          _teacher_inputs, _teacher_outputs, _teacher,
          lambda ctx: {**_catalog_sources(ctx), **_tag_sources(ctx), "teacher": ctx.teacher_spec(), "taxonomy": ctx.taxonomy().version,
                       "llm": ctx.workspace.config.llm if ctx.teacher_spec().startswith("llm:") else {}},
          ("teacher", "distill_objective", "base_rate")),
    Stage("silver", "the Silver Set: a stratified sample with the teacher's labels",
          lambda ctx: {"teacher": ctx.teacher(), "golden": ctx.artifacts.get("golden")},
          lambda ctx: {"silver": ctx.artifacts.get("silver", teacher_slug(ctx.teacher_spec()))}, _silver,
          _interaction_sources, ("silver_sample", "seed", "teacher")),
    Stage("distill", "the student, distilled from the Silver Set and calibrated on golden dev",
          lambda ctx: {"silver": ctx.artifacts.get("silver", teacher_slug(ctx.teacher_spec())), "shards": ctx.artifacts.get("shards"),
                       **_cf_input(ctx), "golden": ctx.artifacts.get("golden"), "teacher": ctx.teacher(),
                       **({"model": ctx.artifacts.get("evidence")} if ctx.teacher_spec() == "evidence" else {})},
          lambda ctx: {"student": ctx.artifacts.get("student")}, _distill, _tag_sources,
          ("distill_objective", "teacher", "base_rate", "max_auc_loss")),
    Stage("label", "the student labels the whole catalog",
          lambda ctx: {**({} if "model" in ctx.options else {"student": ctx.artifacts.get("student")}),
                       **({} if "videos" in ctx.options else {"shards": ctx.artifacts.get("shards")})},
          lambda ctx: {"labels": ctx.labels()}, _label),
    Stage("ranker", "the sequential ranker, and the default ranker and blend chosen on validation",
          lambda ctx: {"labels": ctx.labels(), "cf": ctx.artifacts.get("cf"), "shards": ctx.artifacts.get("shards")},
          lambda ctx: {"ranker": ctx.artifacts.get("ranker")}, _ranker, _interaction_sources, ("seed", "ranker_epochs")),
    Stage("index", "the attribute index restricted retrieval serves",
          lambda ctx: {"labels": ctx.labels(), "cf": ctx.artifacts.get("cf"), **_ranker_input(ctx)},
          lambda ctx: {"index": ctx.artifacts.get("index")}, _index, _index_sources),
    Stage("evaluate", "teacher and student against the golden test split and a single human rater",
          lambda ctx: {"golden": ctx.artifacts.get("golden"), "teacher": ctx.teacher(), "labels": ctx.labels()},
          lambda ctx: {"metrics": ctx.artifacts.get("metrics")}, _evaluate, settings=("teacher",)),
    Stage("eval-retrieval", "restricted vs unrestricted retrieval offline",
          lambda ctx: {"index": ctx.artifacts.get("index"), "shards": ctx.artifacts.get("shards"),
                       "golden": ctx.artifacts.get("golden"), **_ranker_input(ctx)},
          lambda ctx: {"evaluation": ctx.artifacts.get("retrieval-evaluation")}, _eval_retrieval, _interaction_sources),
    Stage("report", "the self-contained HTML report (of the stages that ran)",
          lambda ctx: {name: artifact for name, artifact in (
              ("metrics", ctx.artifacts.get("metrics")), ("student", ctx.artifacts.get("student")),
              ("evaluation", ctx.artifacts.get("retrieval-evaluation")), ("index", ctx.artifacts.get("index")),
          ) if artifact.exists()},
          lambda ctx: {"report": ctx.artifacts.get("report")}, _report, lambda ctx: {"runs": "registry"}),
)
NAMES = tuple(stage.name for stage in STAGES)


def stage(name: str) -> Stage:
    for candidate in STAGES:
        if candidate.name == name:
            return candidate
    raise ConfigError(f"unknown stage {name!r}; the stages are {', '.join(NAMES)}")


# -- running ---------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    stage: str
    status: str  # ran | up to date
    summary: str = ""
    seconds: float = 0.0
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def up_to_date(ctx: Context, step: Stage, fingerprint_: str) -> bool:
    for artifact in step.outputs(ctx).values():
        if not artifact.exists() or artifact.manifest().fingerprint != fingerprint_ or not artifact.verify():
            return False
    return True


def run_stage(
    workspace: Workspace, name: str, *, options: Mapping[str, Any] | None = None, force: bool = True,
    parent_id: str | None = None, config: PipelineConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Outcome, Context]:
    """Run one stage (``force=False``: only when it is out of date) inside a recorded run."""
    step = stage(name)
    ctx = Context(workspace, config or workspace.config.pipeline, dict(options or {}), progress)
    inputs = step.inputs(ctx)
    for artifact in inputs.values():
        artifact.complete_manifest()  # a missing input: one error naming it and the command that makes it
    print_ = fingerprint(ctx, step, inputs)
    if not force and up_to_date(ctx, step, print_):
        return Outcome(name, "up to date"), ctx
    started = time.perf_counter()
    settings = {key: getattr(ctx.config, key) for key in step.settings}
    options_ = {k: str(v.path) if isinstance(v, Artifact) else v for k, v in ctx.options.items()}
    with recorded(workspace, name, {**settings, **options_}, parent_id=parent_id) as run:
        ctx.run, ctx.fingerprint, ctx.inputs = run, print_, inputs
        for input_name, artifact in inputs.items():
            run.use(input_name, artifact)
        summary = step.run(ctx)
        for output_name, artifact in step.outputs(ctx).items():
            run.wrote(output_name, artifact)
        run.lineage = _run_lineage(step.outputs(ctx).values())
        run.note = summary[:300]
    return Outcome(name, "ran", summary, time.perf_counter() - started, run.run_id), ctx


def _run_lineage(outputs: Sequence[Artifact] | Any) -> Lineage:
    """What the registry shows of a stage's run: taxonomy, prompt, model and golden version of what it wrote."""
    found: dict[str, str] = {}
    for artifact in outputs:
        lineage = artifact.manifest().lineage if artifact.exists() else {}
        for key, field_ in (("taxonomy_version",) * 2, ("prompt_version",) * 2, ("model",) * 2,
                            ("golden_version",) * 2, ("split", "golden_split")):
            found[field_] = found.get(field_) or str(lineage.get(key, ""))
    return Lineage(**{k: v for k, v in found.items() if v})


def selected(start: str | None = None, only: Sequence[str] = ()) -> list[str]:
    if only:
        return [stage(name).name for name in only]
    names = list(NAMES)
    return names[names.index(stage(start).name):] if start else names


def run_pipeline(
    workspace: Workspace, *, start: str | None = None, only: Sequence[str] = (), force: bool = False,
    report: Callable[[Outcome], None] | None = None,
) -> tuple[list[Outcome], str]:
    """Run the pipeline's stages in order, skipping those that are up to date; returns the outcomes and the run id."""
    names = selected(start, only)
    outcomes = []
    with recorded(workspace, "pipeline", {"stages": names, "force": force}) as run:
        for name in names:
            outcome, _ = run_stage(workspace, name, force=force, parent_id=run.run_id)
            outcomes.append(outcome)
            if report:
                report(outcome)
        ran = [o.stage for o in outcomes if o.status == "ran"]
        run.note = f"ran {', '.join(ran)}" if ran else "nothing to do: every stage was up to date"
    return outcomes, run.run_id
