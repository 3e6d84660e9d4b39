"""Iteration verbs: the run registry (`vibeset runs ...`) and the golden-set loop (`vibeset iterate ...`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .. import annotators, runs as registry
from ..annotate import versions
from ..artifacts import Stamp, artifacts_of
from ..iterate import analysis, compare, refine
from ..iterate.promote import promote
from ..metrics import fmt
from ..runs import champion, golden_split, taxonomy_in_use, uses_of_test_split
from ..workspace import Workspace
from .app import JsonOption, WorkspaceOption, app, bootstrap_option, check_split, console, fail, print_json, split_option, stdout, workspace

runs_app = typer.Typer(help="The run registry: every annotate / evaluate / iterate / distill run.", no_args_is_help=True)
iterate_app = typer.Typer(help="The golden-set loop: error analysis, comparison, refinement, promotion.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(iterate_app, name="iterate")

AnnotatorHelp = "zero-shot, zero-shot@VERSION, champion, annotations:DIR or student."


# -- runs -------------------------------------------------------------------------------------------
@runs_app.command("list")
def runs_list(
    kind: Optional[str] = typer.Option(None, help="Only runs of this kind (annotate, evaluate, iterate, ...)."),
    limit: int = typer.Option(30, help="How many, most recent first."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Recorded runs, most recent first."""
    ws = workspace(ws_path)
    runs = registry.list_runs(ws, kind=kind, limit=limit)
    if as_json:
        print_json([{**{k: v for k, v in run.to_dict().items() if k != "metrics"}, **run.headline()} for run in runs])
        return
    table = Table(title=f"runs ({len(runs)} shown; golden test split used {uses_of_test_split(ws)} time(s))")
    for column in ("id", "created", "kind", "status", "taxonomy", "prompt/version", "model", "golden", "split", "macro F1", "cost $", "s", "note"):
        table.add_column(column, justify="right" if column in ("macro F1", "cost $", "s") else "left")
    for run in runs:
        d, lin = run.to_dict(), run.lineage
        table.add_row(run.run_id, d["created"], run.kind, run.status, lin.taxonomy_version, lin.prompt_version[:12], lin.model,
                      lin.golden_version, lin.golden_split, fmt(run.headline().get("macro_f1")),
                      "?" if run.cost_usd is None else f"{run.cost_usd:.4f}", fmt(run.duration_s, digits=1), run.note[:48])
    stdout.print(table)


@runs_app.command("show")
def runs_show(run_id: str, ws_path: Optional[Path] = WorkspaceOption, as_json: bool = JsonOption) -> None:
    """One run: config, lineage, metrics, cost, time, artifacts."""
    run = registry.get_run(workspace(ws_path), run_id)
    if as_json:
        print_json(run.to_dict())
        return
    d = run.to_dict()
    for key in ("run_id", "kind", "created", "status", "cost_usd", "duration_s", "parent_id", "command", "note",
                "lineage", "config", "inputs", "outputs"):
        stdout.print(f"{key}: {d[key]}", highlight=False, markup=False)
    headline = {k: v for k, v in run.metrics.items() if k != "per_attribute"}
    stdout.print(f"metrics: {headline}", highlight=False, markup=False)


@runs_app.command("compare")
def runs_compare(a: str, b: str, ws_path: Optional[Path] = WorkspaceOption, as_json: bool = JsonOption) -> None:
    """Differences between two recorded runs: config, lineage and metric deltas (B - A)."""
    result = registry.compare_runs(workspace(ws_path), a, b)
    if as_json:
        print_json({k: v for k, v in result.items() if k not in ("a", "b")} | {"a": result["a"]["run_id"], "b": result["b"]["run_id"]})
        return
    stdout.print(f"A = {result['a']['run_id']} ({result['a']['kind']}), B = {result['b']['run_id']} ({result['b']['kind']})")
    for key in ("config", "lineage"):
        for name, (va, vb) in result[key].items():
            stdout.print(f"{key}.{name}: {va!r} -> {vb!r}", highlight=False)
    table = Table(title="metrics (B - A; unpaired: use 'vibeset iterate compare' for a paired test)")
    for column in ("metric", "A", "B", "delta"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for block in ("macro", "micro"):
        for name, v in result["metrics"].get(block, {}).items():
            table.add_row(f"{block} {name}", fmt(v["a"]), fmt(v["b"]), fmt(v["delta"]))
    for name, v in result["metrics"].get("per_attribute_f1", {}).items():
        table.add_row(f"{name} F1", fmt(v["a"]), fmt(v["b"]), fmt(v["delta"]))
    stdout.print(table)


# -- iterate ----------------------------------------------------------------------------------------
def _split(final: bool) -> str:
    return "test" if final else "dev"


def _final(split: Optional[str], final: bool) -> bool:
    """``--split test`` (or the older ``--final``) asks for the held-out test split."""
    return final or check_split(split, ("dev", "test")) == "test"


SplitOption = split_option(None, ("dev", "test"), "Golden split (default dev; test is a recorded use, sparingly).")
FinalOption = typer.Option(False, "--final", hidden=True, help="Same as --split test.")


def _spec(annotator: str, prompt: Optional[str]) -> str:
    if prompt is None:
        return annotator
    if annotator != "zero-shot":
        fail("--prompt VERSION selects a taxonomy or zero-shot version for --annotator zero-shot; "
             "for LLM labels pass --annotator annotations:DIR of a run made with that prompt")
    return f"zero-shot@{prompt}"


def _videos(ws: Workspace, golden) -> list:
    return list(ws.catalog.subset(sorted(golden.pairs["video_id"].unique())))


@iterate_app.command("evaluate")
def iterate_evaluate(
    annotator: str = typer.Option("zero-shot", "--annotator", "-a", help=AnnotatorHelp),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Taxonomy or zero-shot version to evaluate (same as zero-shot@VERSION)."),
    split: Optional[str] = SplitOption,
    final: bool = FinalOption,
    bootstrap: int = bootstrap_option(500),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Error analysis on the golden dev split (or test with --split test): metrics with CIs, confusion, FPs and FNs.

    The report is an analysis artifact (ARTIFACTS/iterate/reports/RUN_ID: analysis.json and analysis.md).
    """
    final = _final(split, final)
    ws = workspace(ws_path)
    spec = annotators.check_spec(ws, _spec(annotator, prompt)).text
    with registry.recorded(ws, "evaluate", {"annotator": spec, "final": final, "bootstrap": bootstrap}) as run:
        dev = golden_split(ws, "dev")
        golden = golden_split(ws, _split(final), final=final, purpose=f"iterate evaluate {spec}") if final else dev
        videos = _videos(ws, golden)
        labels = annotators.labels(ws, spec, videos, dev)
        report = analysis.error_analysis(golden, labels.frame, {v.video_id: v for v in videos}, n_boot=bootstrap)
        report["confidence"] = _confidence(spec, golden, dev, bootstrap)
        report["header"] = {
            "run_id": run.run_id, "annotator": spec, "annotator_version": labels.version, "model": labels.model,
            "taxonomy_version": labels.taxonomy_version, "golden_version": golden.version, "split": _split(final),
            "test_uses": uses_of_test_split(ws),
        }
        artifact = artifacts_of(ws).get("analysis", run.run_id)
        paths = analysis.write_report(report, artifact, Stamp(run.run_id, stage="iterate"))
        run.lineage = registry.Lineage(labels.taxonomy_version, labels.version, labels.model, golden.version, _split(final))
        run.metrics = {k: report[k] for k in ("micro", "macro", "per_attribute", "coverage", "confidence")}
        run.wrote("analysis", artifact)
    if as_json:
        print_json({"run_id": run.run_id, "header": report["header"], "report": {k: str(v) for k, v in paths.items()},
                    "micro": report["micro"], "macro": report["macro"], "confidence": report["confidence"],
                    "per_attribute": {b["attribute"]: {**b["metrics"], "confusion": b["confusion"]} for b in report["attributes"]}})
        return
    table = Table(title=f"{spec} on golden {_split(final)} ({golden.version}), worst F1 first; "
                        f"test split used {report['header']['test_uses']} time(s)")
    for column in ("attribute", "n", "prev", "P", "R", "F1 [95% CI]", "TP", "FP", "FN", "TN"):
        table.add_column(column, justify="left" if column == "attribute" else "right")
    for block in report["attributes"]:
        m, c = block["metrics"], block["confusion"]
        table.add_row(block["attribute"], str(m["n"]), fmt(m["prevalence"], digits=2), fmt(m["precision"]), fmt(m["recall"]),
                      fmt(m["f1"], m["ci"]["f1"]), *(str(c[k]) for k in analysis.CONFUSION))
    table.add_section()
    for block in ("micro", "macro"):
        m = report[block]
        table.add_row(block.upper(), str(m["n"]), "", fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"], m["ci"]["f1"]))
    stdout.print(table)
    _print_confidence(report["confidence"], _split(final))
    console.print(f"run {run.run_id}: report {paths['markdown']}")


def _confidence(spec: str, golden, dev, bootstrap: int) -> dict:
    """Each kind of confidence an LLM run kept (self-report, logprob), side by side; {} for other annotators."""
    if not spec.startswith("annotations:"):
        return {}
    from ..llm.store import read_confidences

    confidences = read_confidences(spec.split(":", 1)[1])
    return analysis.confidence_kinds(golden, dev, confidences, n_boot=min(bootstrap, 200))


def _print_confidence(kinds: dict, split: str) -> None:
    if not kinds:
        return
    table = Table(title=f"confidence on golden {split}: ROC-AUC of each kind; Brier before / after Platt fitted on dev")
    for column in ("kind", "pairs", "coverage", "micro AUC [95% CI]", "macro AUC", "Brier", "Brier calibrated"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, k in kinds.items():
        table.add_row(k["description"], str(k["pairs"]), fmt(k["coverage"], digits=2), fmt(k["micro_auc"], k["micro_auc_ci"]),
                      fmt(k["macro_auc"]), fmt(k["brier"]), fmt(k["brier_calibrated"]))
    stdout.print(table)


@iterate_app.command("compare")
def iterate_compare(
    a: str = typer.Argument(..., help=f"Version A: {AnnotatorHelp}"),
    b: str = typer.Argument(..., help="Version B, same forms; zero-shot@V takes a taxonomy version too."),
    split: Optional[str] = SplitOption,
    final: bool = FinalOption,
    bootstrap: int = bootstrap_option(1000),
    show_flips: int = typer.Option(20, "--flips", help="How many flipped labels to print (all are in --json)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Two versions on the same golden items: F1 deltas with paired bootstrap and McNemar, and the flips."""
    final = _final(split, final)
    ws = workspace(ws_path)
    started = time.perf_counter()
    annotators.check_spec(ws, a), annotators.check_spec(ws, b)
    dev = golden_split(ws, "dev")
    golden = golden_split(ws, "test", final=True, purpose=f"iterate compare {a} {b}") if final else dev
    videos = _videos(ws, golden)
    side_a, side_b = annotators.labels(ws, a, videos, dev), annotators.labels(ws, b, videos, dev)
    result = compare.compare_versions(golden, side_a.frame, side_b.frame, {v.video_id: v for v in videos}, n_boot=bootstrap)
    result["a"] = {"spec": a, "version": side_a.version, "taxonomy_version": side_a.taxonomy_version, "model": side_a.model,
                   "shots": _shots(a)}
    result["b"] = {"spec": b, "version": side_b.version, "taxonomy_version": side_b.taxonomy_version, "model": side_b.model,
                   "shots": _shots(b)}
    result["golden"] = {"version": golden.version, "split": _split(final), "test_uses": uses_of_test_split(ws)}
    run = registry.record_run(
        ws, "compare",
        lineage=registry.Lineage(side_b.taxonomy_version, side_b.version, side_b.model, golden.version, _split(final)),
        config={"a": a, "b": b, "version_a": side_a.version, "version_b": side_b.version, "final": final, "bootstrap": bootstrap},
        metrics={k: result[k] for k in ("macro", "micro", "per_attribute", "flip_counts", "metrics_a", "metrics_b")},
        duration_s=time.perf_counter() - started,
    )
    result["run_id"] = run.run_id
    if as_json:
        print_json(result)
        return
    shots = {side: "" if result[side]["shots"] is None else f", {result[side]['shots']}-shot" for side in ("a", "b")}
    table = Table(title=f"B - A on golden {_split(final)} ({result['coverage']['pairs']} shared pairs); "
                        f"A={a} ({side_a.version}{shots['a']}), B={b} ({side_b.version}{shots['b']})")
    for column in ("attribute", "n", "F1 A", "F1 B", "delta [95% CI]", "p boot", "A-only right", "B-only right", "p McNemar"):
        table.add_column(column, justify="left" if column == "attribute" else "right")
    rows = sorted(result["per_attribute"].items(), key=lambda kv: kv[1]["delta"])
    for name, v in [*rows, ("MICRO", result["micro"]), ("MACRO", result["macro"])]:
        if name == "MICRO":
            table.add_section()
        table.add_row(name, str(v["n"]), fmt(v["f1_a"]), fmt(v["f1_b"]), fmt(v["delta"], v["delta_ci"]),
                      fmt(v["p_bootstrap"]), str(v["only_a_right"]), str(v["only_b_right"]), fmt(v["p_mcnemar"]))
    stdout.print(table)
    for side in ("a", "b"):
        m = result[f"metrics_{side}"]
        stdout.print(f"{side.upper()}: macro F1 {fmt(m['macro']['f1'], m['macro']['ci']['f1'])}, "
                     f"micro F1 {fmt(m['micro']['f1'], m['micro']['ci']['f1'])}", highlight=False)
    counts = result["flip_counts"]
    stdout.print(f"{len(result['flips'])} labels flipped: {counts['fixed']} fixed, {counts['broke']} broke; "
                 f"golden test split used {result['golden']['test_uses']} time(s)", highlight=False)
    for flip in result["flips"][:show_flips]:
        stdout.print(f"  {flip['change']:5} {flip['attribute']:18} {flip['label_a']!s:5} -> {flip['label_b']!s:5} "
                     f"(humans {flip['human_label']!s:5}) {flip['title']} [{flip['video_id']}]", highlight=False)
    console.print(f"run {run.run_id}")


def _shots(spec: str) -> Optional[int]:
    """Few-shot examples per video of an LLM run's labels (annotations:DIR); None for other annotators."""
    if not spec.startswith("annotations:"):
        return None
    from ..llm.store import job_of

    shots = job_of(spec.split(":", 1)[1]).get("shots")
    return None if shots is None else int(shots)


def _llm_config(ws: Workspace, model: str, price_in: Optional[float], price_out: Optional[float]):
    from ..llm.config import LLMConfig, Price

    config = LLMConfig.from_table(dict(ws.config.llm), f"{ws.root / 'vibeset.toml'} [llm]")
    if (price_in is None) != (price_out is None):
        fail("give both --price-in and --price-out (USD per million tokens), or neither")
    if price_in is not None:
        config = config.model_copy(update={"prices": {**config.prices, model: Price(input=price_in, output=price_out)}})
    if config.cache is not None:
        config = config.model_copy(update={"cache": ws.path(config.cache)})
    return config


@iterate_app.command("refine")
def iterate_refine(
    attribute: list[str] = typer.Option([], "--attribute", help="Attribute to refine (repeatable; offline default: all)."),
    annotator: str = typer.Option("zero-shot", "--annotator", "-a", help=f"Whose dev errors to learn from: {AnnotatorHelp}"),
    backend: str = typer.Option("offline", "--backend", help="offline (zero-shot prototypes), openai or gemini (meta-prompt)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name, passed through to the provider."),
    auto: bool = typer.Option(False, "--auto", help="Repeat rounds until dev F1 stops improving or the budget is spent."),
    max_rounds: int = typer.Option(3, "--max-rounds", help="Most rounds with --auto."),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", help="Most USD to spend with --auto (needs the model's price)."),
    price_in: Optional[float] = typer.Option(None, "--price-in", help="USD per million input tokens of --model."),
    price_out: Optional[float] = typer.Option(None, "--price-out", help="USD per million output tokens of --model."),
    per_side: int = typer.Option(refine.PER_SIDE, "--per-side", help="False positives and negatives used per attribute and round."),
    template: Optional[Path] = typer.Option(None, "--template", help="Meta-prompt template (default: the bundled refine_definition.j2)."),
    accept: bool = typer.Option(False, "--accept", help="Accept the pending proposal for --attribute."),
    reject: bool = typer.Option(False, "--reject", help="Reject the pending proposal for --attribute."),
    edit: Optional[Path] = typer.Option(None, "--edit", help="Accept your edited definition file (YAML) instead."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Refine attributes from their dev errors: offline prototypes, or an LLM-proposed definition to accept/edit/reject."""
    ws = workspace(ws_path)
    decisions = [name for name, on in (("accept", accept), ("reject", reject), ("edit", edit is not None)) if on]
    if decisions:
        if len(decisions) > 1 or len(attribute) != 1:
            fail("give one of --accept, --reject or --edit FILE, with exactly one --attribute")
        result = refine.decide(ws, attribute[0], decisions[0], edit)
        if as_json:
            print_json(result)
        elif "taxonomy_version" in result:
            console.print(f"new taxonomy version {result['taxonomy_version']} written to {result['taxonomy_path']} "
                          f"(run {result['run_id']}). Measure it offline: vibeset iterate compare zero-shot "
                          f"zero-shot@{result['taxonomy_version']}; make it the default: vibeset iterate promote "
                          f"{result['taxonomy_version']}")
        else:
            console.print(f"rejected the proposal for {attribute[0]} (run {result['run_id']})")
        return
    dev = golden_split(ws, "dev")
    if backend == "offline":
        if not (annotator in ("zero-shot", "champion") or annotator.startswith("zero-shot@")):
            fail("offline refinement adds prototypes to a zero-shot annotator; --annotator must be zero-shot[@VERSION]")
        spec = annotator
        if annotator == "champion":
            current = champion(ws)
            spec = f"zero-shot@{current.version}" if current else "zero-shot"
        base, taxonomy = annotators.zero_shot_for(ws, annotators.parse_spec(spec), dev)

        def show(round_: refine.Round) -> None:
            console.print(f"round {round_.round}: dev macro F1 {round_.dev_macro_f1:.3f} -> version {round_.version} "
                          f"({'improved' if round_.improved else 'no improvement'}; run {round_.run_id})")

        result = refine.refine_offline(ws, base, taxonomy, dev, attributes=attribute or None,
                                       max_rounds=max_rounds if auto else 1, per_side=per_side, progress=show)
        if as_json:
            print_json(result)
            return
        console.print(f"dev macro F1 {result['base_dev_macro_f1']:.3f} (base {result['base_version']}) -> "
                      f"{result['best_dev_macro_f1']:.3f} (best {result['best_version']}). Dev numbers flatter a "
                      f"version fitted on dev; check it once on test: vibeset iterate compare {annotator} "
                      f"zero-shot@{result['best_version']} --split test")
        return
    if model is None:
        fail(f"--backend {backend} needs --model")
    if len(attribute) != 1:
        fail("LLM refinement works on one attribute at a time: give exactly one --attribute")
    config = _llm_config(ws, model, price_in, price_out)
    template_text = refine.load_meta_template(template) if template else None

    def make_backend():
        return config.backend(backend, model, base_url)

    if auto:
        taxonomy = taxonomy_in_use(ws)

        def show_llm(round_: refine.Round) -> None:
            cost = "?" if round_.cost_usd is None else f"${round_.cost_usd:.4f}"
            console.print(f"round {round_.round}: dev F1 {round_.dev_macro_f1:.3f}, taxonomy {round_.version}, {cost} "
                          f"({'improved' if round_.improved else 'no improvement'})")

        result = refine.refine_llm_auto(ws, attribute[0], taxonomy, dev, make_backend, config, max_rounds=max_rounds,
                                        max_cost=max_cost, per_side=per_side, template=template_text, progress=show_llm)
        if as_json:
            print_json(result)
            return
        cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.4f}"
        console.print(f"{attribute[0]}: dev F1 {result['base_dev_f1']:.3f} -> {result['best_dev_f1']:.3f}; best taxonomy "
                      f"{result['best_version']}; stopped: {result['stopped']}; cost {cost}. "
                      f"Promote it with: vibeset iterate promote {result['best_version']}")
        return
    videos = _videos(ws, dev)
    labels = annotators.labels(ws, annotator, videos, dev)
    taxonomy = (versions.load_taxonomy_version(ws, labels.taxonomy_version)
                if labels.taxonomy_version and "," not in labels.taxonomy_version else taxonomy_in_use(ws))
    record = refine.propose(ws, attribute[0], taxonomy, labels.frame, dev, make_backend(), config,
                            annotator=annotator, per_side=per_side, template=template_text)
    if as_json:
        print_json(record)
        return
    name = attribute[0]
    stdout.print(f"{name} (dev F1 {record['dev_f1']:.3f}, {record['confusion']})", highlight=False)
    for side in ("current", "proposed"):
        block = record[side]
        stdout.print(f"{side}: {block['definition']}\n  counts: {'; '.join(block['includes'])}\n"
                     f"  does not count: {'; '.join(block['excludes'])}", highlight=False)
    if record["proposed"].get("rationale"):
        stdout.print(f"rationale: {record['proposed']['rationale']}", highlight=False)
    console.print(f"accept: vibeset iterate refine --attribute {name} --accept | edit {record['files']['yaml']} then "
                  f"--edit {record['files']['yaml']} | reject: --reject")


@iterate_app.command("promote")
def iterate_promote(
    version: str = typer.Argument(..., help="A taxonomy version (taxonomies/V.yaml) or a zero-shot version (or a unique prefix)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Mark VERSION the champion that bulk annotation uses by default."""
    promoted = promote(workspace(ws_path), version)
    if as_json:
        print_json(promoted.__dict__)
        return
    console.print(f"champion: {promoted.kind} version {promoted.version} ({promoted.path}); run {promoted.run_id}")
