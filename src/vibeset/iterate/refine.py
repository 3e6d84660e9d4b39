"""Refinement: turn an attribute's errors on the golden dev split into a better next version.

Two ways, one loop:

- **offline** (zero-shot annotator): the most confident false negatives become positive
  prototypes of the attribute and the most confident false positives negative ones; thresholds
  are re-fitted on dev. Each round is a new zero-shot version.
- **LLM**: a meta-prompt (``prompts/refine_definition.j2``) shows a model the attribute's
  definition and its false positives / negatives with the annotator's evidence and the human
  ratings; the model proposes a revised definition (definition / includes / excludes). The user
  accepts, edits or rejects it; an accepted one is a new taxonomy version written to
  ``taxonomies/<version>.yaml`` (the user's taxonomy file is never touched).

``--auto`` repeats rounds within a budget (max rounds, max cost) and stops as soon as dev F1
of the refined attributes stops improving. All of it sees only the dev split.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import yaml
from jinja2 import Environment, StrictUndefined, TemplateSyntaxError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..annotate.zeroshot import ZeroShotAnnotator
from ..catalog import Video
from ..errors import BackendError, ConfigError, DataError
from ..golden import GoldenSet
from ..metrics import evaluate_pairs
from ..taxonomy import Attribute, Taxonomy
from ..workspace import Workspace
from .analysis import error_analysis, scored_pairs
from ..annotate.versions import load_taxonomy_version, save_taxonomy, save_zero_shot
from ..artifacts import artifacts_of
from ..runs import Lineage, jsonable, new_run_id, record_run

PER_SIDE = 10
USER_MARK = "<<<USER>>>"
_ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, trim_blocks=True)


# -- scoring on dev ---------------------------------------------------------------------------------
def dev_f1(golden: GoldenSet, annotations: pd.DataFrame, attributes: Sequence[str] | None = None, *, n_boot: int = 200) -> dict[str, Any]:
    """Macro F1 (with CI) over ``attributes`` (all when None) and per-attribute F1 on ``golden``."""
    pairs = scored_pairs(golden, annotations)
    if attributes:
        pairs = pairs[pairs["attribute"].isin(attributes)]
    if pairs.empty:
        raise DataError(f"no golden dev pairs for {list(attributes or [])}; nothing to refine against")
    result = evaluate_pairs(pairs[["video_id", "attribute", "y_true", "y_pred"]], n_boot=n_boot)
    return {
        "macro_f1": result["macro"]["f1"],
        "macro_f1_ci": result["macro"]["ci"]["f1"],
        "micro_f1": result["micro"]["f1"],
        "per_attribute_f1": {name: block["f1"] for name, block in result["per_attribute"].items()},
    }


# -- offline: prototypes -----------------------------------------------------------------------------
def prototype_round(
    annotator: ZeroShotAnnotator,
    taxonomy: Taxonomy,
    dev: GoldenSet,
    videos: Mapping[str, Video],
    *,
    attributes: Sequence[str] | None = None,
    per_side: int = PER_SIDE,
) -> tuple[ZeroShotAnnotator, dict[str, dict[str, int]]]:
    """One offline round: the ``per_side`` most confident FNs (FPs) of each attribute become
    positive (negative) prototypes and thresholds are re-fitted; an attribute whose dev F1 did
    not improve keeps its old prototypes. Returns the annotator and what was added per attribute."""
    dev_videos = [videos[v] for v in sorted(dev.pairs["video_id"].unique()) if v in videos]
    pairs = scored_pairs(dev, annotator.annotate(dev_videos, taxonomy))
    positives = {k: list(v) for k, v in annotator.positives.items()}
    negatives = {k: list(v) for k, v in annotator.negatives.items()}
    added: dict[str, dict[str, int]] = {}
    for name in taxonomy.check_names(list(attributes or taxonomy.names)):
        rows = pairs[pairs["attribute"] == name].sort_values(["confidence", "video_id"], ascending=[False, True])
        counts = {}
        for outcome, store, key in (("fn", positives, "positives"), ("fp", negatives, "negatives")):
            texts = store.setdefault(name, [])
            new = [videos[v].text() for v in rows.loc[rows["outcome"] == outcome, "video_id"]]
            new = [text for text in dict.fromkeys(new) if text not in texts][:per_side]
            texts.extend(new)
            counts[key] = len(new)
        added[name] = counts
    refined = _refit(annotator, positives, negatives, dev_videos, taxonomy, dev)
    # keep an attribute's new prototypes only where they helped it on dev (the user's accept/reject, automated)
    before = dev_f1(dev, annotator.annotate(dev_videos, taxonomy), list(added), n_boot=0)["per_attribute_f1"]
    after = dev_f1(dev, refined.annotate(dev_videos, taxonomy), list(added), n_boot=0)["per_attribute_f1"]
    worse = [name for name in added if after.get(name, 0.0) <= before.get(name, 0.0)]
    if worse:
        for name in worse:
            positives[name] = list(annotator.positives.get(name, []))
            negatives[name] = list(annotator.negatives.get(name, []))
            added[name] = {"positives": 0, "negatives": 0, "reverted": 1}
        refined = _refit(annotator, positives, negatives, dev_videos, taxonomy, dev)
    return refined, added


def _refit(base: ZeroShotAnnotator, positives: dict, negatives: dict, videos: list[Video], taxonomy: Taxonomy,
           dev: GoldenSet) -> ZeroShotAnnotator:
    return ZeroShotAnnotator(
        base.encoder,
        objective=base.objective,
        positives={k: v for k, v in positives.items() if v},
        negatives={k: v for k, v in negatives.items() if v},
        negative_weight=base.negative_weight,
    ).fit(videos, taxonomy, dev)


@dataclass
class Round:
    """One refinement round: the version it produced and its dev score."""

    round: int
    version: str
    dev_macro_f1: float
    dev_macro_f1_ci: list[float]
    improved: bool
    run_id: str = ""
    cost_usd: float | None = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def refine_offline(
    workspace: Workspace,
    annotator: ZeroShotAnnotator,
    taxonomy: Taxonomy,
    dev: GoldenSet,
    *,
    attributes: Sequence[str] | None = None,
    max_rounds: int = 1,
    per_side: int = PER_SIDE,
    progress: Callable[[Round], None] | None = None,
) -> dict[str, Any]:
    """Prototype rounds until ``max_rounds`` or dev F1 stops improving; every round is saved and recorded.

    Returns the base score, the rounds and ``best_version`` (the base's when nothing improved).
    """
    if max_rounds < 1:
        raise ConfigError(f"max rounds must be at least 1, got {max_rounds}")
    videos = {v.video_id: v for v in workspace.catalog.subset(sorted(dev.pairs["video_id"].unique()))}
    dev_videos = list(videos.values())
    base = dev_f1(dev, annotator.annotate(dev_videos, taxonomy), attributes)
    best, best_score, parent = annotator, base["macro_f1"], ""
    rounds: list[Round] = []
    for number in range(1, max_rounds + 1):
        started = time.perf_counter()
        refined, added = prototype_round(best, taxonomy, dev, videos, attributes=attributes, per_side=per_side)
        score = dev_f1(dev, refined.annotate(dev_videos, taxonomy), attributes)
        run_id = new_run_id()
        version = save_zero_shot(workspace, refined, run_id)
        improved = score["macro_f1"] > best_score
        run = record_run(
            workspace,
            "iterate",
            lineage=Lineage(taxonomy.version, version, refined.encoder.name, dev.version, "dev"),
            config={"mode": "offline", "round": number, "attributes": list(attributes or []), "per_side": per_side,
                    "base_version": best.version},
            metrics={**score, "base_macro_f1": best_score, "added": added},
            duration_s=time.perf_counter() - started,
            outputs={"annotator": str(artifacts_of(workspace).get("zero-shot-version", version).path)},
            run_id=run_id,
            parent_id=parent or None,
            note="improved dev F1" if improved else "no dev F1 improvement: stopped",
        )
        rounds.append(Round(number, version, score["macro_f1"], score["macro_f1_ci"], improved, run.run_id,
                            detail={"per_attribute_f1": score["per_attribute_f1"], "added": added}))
        if progress:
            progress(rounds[-1])
        if not improved:
            break
        best, best_score, parent = refined, score["macro_f1"], run.run_id
    return {
        "mode": "offline",
        "attributes": list(attributes or taxonomy.names),
        "base_version": annotator.version,
        "base_dev_macro_f1": base["macro_f1"],
        "base_dev_macro_f1_ci": base["macro_f1_ci"],
        "rounds": [r.__dict__ for r in rounds],
        "best_version": best.version,
        "best_dev_macro_f1": best_score,
    }


# -- LLM: the meta-prompt ----------------------------------------------------------------------------
class Proposal(BaseModel):
    """A revised definition of one attribute, as the model proposes it (or the user edits it)."""

    model_config = ConfigDict(extra="ignore")
    definition: str = Field(min_length=10)
    includes: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)
    rationale: str = ""

    def apply(self, attribute: Attribute) -> Attribute:
        """The attribute with this definition; name, examples and aliases unchanged."""
        return attribute.model_copy(
            update={"definition": self.definition.strip(), "includes": tuple(i.strip() for i in self.includes if i.strip()),
                    "excludes": tuple(e.strip() for e in self.excludes if e.strip())}
        )


PROPOSAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "definition": {"type": "string"},
        "includes": {"type": "array", "items": {"type": "string"}},
        "excludes": {"type": "array", "items": {"type": "string"}},
        "rationale": {"type": "string"},
    },
    "required": ["definition", "includes", "excludes", "rationale"],
    "additionalProperties": False,
}


def _fenced(example: Mapping[str, Any], kind: str) -> str:
    """One error example as escaped JSON, so no text in it can close the data fence."""
    data = {
        "error": kind,
        "title": example["title"],
        "tags": example["tags"],
        "description": example["text"],
        "annotator_score": None if example["score"] is None else round(example["score"], 3),
        "annotator_evidence": example["evidence"],
        "human_ratings": example["human_ratings"],
        "human_mean_rating": round(example["human_mean_rating"], 2),
    }
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def load_meta_template(path: str | Path | None = None) -> str:
    """The bundled meta-prompt, or a user's template file with the same variables."""
    if path is None:
        return (resources.files("vibeset") / "prompts" / "refine_definition.j2").read_text(encoding="utf-8")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read meta-prompt template: {err.strerror}") from err


def meta_prompt(
    attribute: Attribute,
    errors: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    threshold: float,
    per_side: int = PER_SIDE,
    template: str | None = None,
) -> tuple[str, str]:
    """(system, user) texts of the meta-prompt for ``attribute`` and its most confident errors."""
    source = template or load_meta_template()
    try:
        text = _ENV.from_string(source).render(
            attribute=attribute,
            threshold=f"{threshold:g}",
            false_positives=[_fenced(e, "false_positive") for e in errors["false_positives"][:per_side]],
            false_negatives=[_fenced(e, "false_negative") for e in errors["false_negatives"][:per_side]],
        )
    except TemplateSyntaxError as err:
        raise ConfigError(f"meta-prompt template, line {err.lineno}: {err.message}") from err
    if USER_MARK not in text:
        raise ConfigError(f"the meta-prompt template must contain a line {USER_MARK} between instructions and data")
    system, user = text.split(USER_MARK, 1)
    return system.strip() + "\n", user.strip() + "\n"


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def parse_proposal(text: str) -> Proposal | str:
    """The proposal in a model's answer, or why there is none (form is repaired, content never)."""
    stripped = _FENCE.sub("", (text or "").strip())
    start, end = stripped.find("{"), stripped.rfind("}")
    if start == -1 or end <= start:
        return "no JSON object in the answer"
    try:
        data = json.loads(stripped[start : end + 1])
    except json.JSONDecodeError as err:
        return f"invalid JSON: {err.msg}"
    if isinstance(data, dict) and "definition" not in data and len(data) == 1 and isinstance(next(iter(data.values())), dict):
        data = next(iter(data.values()))
    try:
        return Proposal.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        return f"{'.'.join(map(str, first['loc'])) or 'answer'}: {first['msg']}"


@dataclass(frozen=True)
class Spend:
    """Tokens and cost of LLM calls (cost None when the model's price is unknown)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0

    def __add__(self, other: "Spend") -> "Spend":
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Spend(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens, cost)


async def _propose(backend: Any, system: str, user: str, config: Any) -> tuple[Proposal, Spend]:
    """One proposal through the engine's retry / back-off / cost loop (``vibeset.llm.calls.Caller``)."""
    from ..llm.backend import Request
    from ..llm.calls import Answer, Caller, Usage
    from ..llm.response import ParseFailure

    def parse(completion: Any) -> Proposal | ParseFailure:
        parsed = parse_proposal(completion.text)
        return parsed if isinstance(parsed, Proposal) else ParseFailure("invalid_proposal", f"unusable answer ({parsed})")

    usage = Usage(cost_usd=0.0 if config.price(backend.model) else None)
    estimate = (len(system + user) / config.chars_per_token, 400.0)
    try:
        result = await Caller(backend, config, usage).call(Request(system=system, user=user, schema=PROPOSAL_SCHEMA),
                                                           parse, estimate)
    finally:
        await backend.aclose()
    if not isinstance(result, Answer):
        raise BackendError(f"no definition proposal from {backend.model} after {result.get('attempts', 0)} tries; "
                           f"last: {result['kind']}: {result['message']} {result['raw'][:200]!r}")
    return result.parsed, Spend(usage.input_tokens, usage.output_tokens, usage.cost_usd)


def propose_definition(
    backend: Any,
    config: Any,
    attribute: Attribute,
    errors: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    threshold: float,
    per_side: int = PER_SIDE,
    template: str | None = None,
) -> tuple[Proposal, Spend]:
    """Ask ``backend`` (a ``vibeset.llm`` backend; closed afterwards) for a revised definition."""
    system, user = meta_prompt(attribute, errors, threshold=threshold, per_side=per_side, template=template)
    return asyncio.run(_propose(backend, system, user, config))


def attribute_errors(golden: GoldenSet, annotations: pd.DataFrame, videos: Mapping[str, Video], attribute: str) -> dict[str, Any]:
    """The FP/FN examples and metrics of one attribute on ``golden`` (from the error analysis)."""
    report = error_analysis(golden, annotations, videos, n_boot=100)
    for block in report["attributes"]:
        if block["attribute"] == attribute:
            return block
    raise DataError(f"the annotator labelled no golden dev pair of {attribute!r}")


# -- pending proposals: accept / edit / reject -------------------------------------------------------
def proposals_dir(workspace: Workspace) -> Path:
    return artifacts_of(workspace).place("proposals")


def save_pending(workspace: Workspace, record: Mapping[str, Any]) -> dict[str, Path]:
    """Store a proposal awaiting a decision: JSON (the record) and YAML (the definition, to edit)."""
    directory = proposals_dir(workspace)
    directory.mkdir(parents=True, exist_ok=True)
    name = record["attribute"]
    paths = {"json": directory / f"{name}.json", "yaml": directory / f"{name}.yaml"}
    paths["json"].write_text(json.dumps(jsonable(record), indent=2), encoding="utf-8")
    proposed = {k: record["proposed"][k] for k in ("definition", "includes", "excludes")}
    paths["yaml"].write_text(
        f"# Proposed definition of {name!r}; edit and pass this file to 'vibeset iterate refine --attribute {name} --edit FILE'\n"
        + yaml.safe_dump(proposed, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )
    return paths


def load_pending(workspace: Workspace, attribute: str) -> dict[str, Any]:
    path = proposals_dir(workspace) / f"{attribute}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(
            f"no pending proposal for {attribute!r} ({path}); run 'vibeset iterate refine --attribute {attribute} "
            "--backend openai --model M' first"
        ) from err


def read_edit(path: str | Path) -> Proposal:
    """A user-edited definition file (YAML or JSON with definition / includes / excludes)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the edited definition: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with definition, includes and excludes")
    try:
        return Proposal.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from err


def decide(workspace: Workspace, attribute: str, action: str, edit: str | Path | None = None) -> dict[str, Any]:
    """Accept, edit (accept the user's version) or reject the pending proposal for ``attribute``.

    Accepting writes a new taxonomy version; every decision is recorded as an 'iterate' run.
    """
    if action not in ("accept", "edit", "reject"):
        raise ConfigError(f"action must be accept, edit or reject, got {action!r}")
    pending = load_pending(workspace, attribute)
    base = load_taxonomy_version(workspace, pending["base_taxonomy_path"])
    result: dict[str, Any] = {"attribute": attribute, "action": action, "base_taxonomy_version": base.version}
    run_id = new_run_id()
    if action != "reject":
        proposal = read_edit(edit) if action == "edit" else Proposal.model_validate(pending["proposed"])
        taxonomy = base.with_attribute(proposal.apply(base[attribute]))
        path = save_taxonomy(workspace, taxonomy, run_id)
        result.update(taxonomy_version=taxonomy.version, taxonomy_path=str(path), definition=proposal.model_dump())
    run = record_run(
        workspace,
        "iterate",
        lineage=Lineage(taxonomy_version=result.get("taxonomy_version", base.version), model=pending.get("model", "")),
        config={"mode": "llm", "action": action, "attribute": attribute, "base_taxonomy_version": base.version},
        metrics={"proposal_cost_usd": pending.get("cost_usd")},
        cost_usd=0.0,
        outputs={"taxonomy": result["taxonomy_path"]} if "taxonomy_path" in result else {},
        parent_id=pending.get("run_id") or None,
        run_id=run_id,
        note=f"{action}ed proposal for {attribute}",
    )
    result["run_id"] = run.run_id
    for suffix in (".json", ".yaml"):
        (proposals_dir(workspace) / f"{attribute}{suffix}").unlink(missing_ok=True)
    return result


# -- LLM: one proposal, and the automatic loop ---------------------------------------------------------
def propose(
    workspace: Workspace,
    attribute: str,
    taxonomy: Taxonomy,
    annotations: pd.DataFrame,
    dev: GoldenSet,
    backend: Any,
    config: Any,
    *,
    annotator: str = "",
    per_side: int = PER_SIDE,
    template: str | None = None,
) -> dict[str, Any]:
    """Propose a revised definition of ``attribute`` from the annotator's dev errors; stored as pending."""
    taxonomy.check_names([attribute])
    videos = {v.video_id: v for v in workspace.catalog.subset(sorted(dev.pairs["video_id"].unique()))}
    errors = attribute_errors(dev, annotations, videos, attribute)
    started = time.perf_counter()
    model = backend.model
    proposal, spend = propose_definition(
        backend, config, taxonomy[attribute], errors, threshold=dev.threshold, per_side=per_side, template=template
    )
    run = record_run(
        workspace,
        "iterate",
        lineage=Lineage(taxonomy.version, "", model, dev.version, "dev"),
        config={"mode": "llm", "action": "propose", "attribute": attribute, "annotator": annotator, "per_side": per_side},
        metrics={"dev_f1": errors["metrics"]["f1"], "confusion": errors["confusion"],
                 "input_tokens": spend.input_tokens, "output_tokens": spend.output_tokens},
        cost_usd=spend.cost_usd,
        duration_s=time.perf_counter() - started,
        note=f"proposal for {attribute} pending a decision",
    )
    current = taxonomy[attribute]
    record = {
        "attribute": attribute,
        "base_taxonomy_version": taxonomy.version,
        "base_taxonomy_path": str(save_taxonomy(workspace, taxonomy, run.run_id)),
        "current": {"definition": current.definition, "includes": list(current.includes), "excludes": list(current.excludes)},
        "proposed": proposal.model_dump(),
        "dev_f1": errors["metrics"]["f1"],
        "confusion": errors["confusion"],
        "model": model,
        "cost_usd": spend.cost_usd,
        "run_id": run.run_id,
    }
    record["files"] = {k: str(v) for k, v in save_pending(workspace, record).items()}
    return record


def refine_llm_auto(
    workspace: Workspace,
    attribute: str,
    taxonomy: Taxonomy,
    dev: GoldenSet,
    make_backend: Callable[[], Any],
    config: Any,
    *,
    max_rounds: int = 3,
    max_cost: float | None = None,
    per_side: int = PER_SIDE,
    template: str | None = None,
    progress: Callable[[Round], None] | None = None,
) -> dict[str, Any]:
    """Propose, annotate the attribute's dev videos with the LLM under the proposal, keep it if dev F1
    improved; stop at ``max_rounds``, at ``max_cost`` USD, or at the first round without improvement.

    The LLM annotates through the run engine (``ARTIFACTS/iterate/auto/<taxonomy version>``), so a
    repeated round replays cached answers instead of paying twice.
    """
    from ..annotation import read_annotations
    from ..llm import engine

    taxonomy.check_names([attribute])
    if max_rounds < 1:
        raise ConfigError(f"max rounds must be at least 1, got {max_rounds}")
    model = make_backend().model
    if max_cost is not None and config.price(model) is None:
        raise ConfigError(f"--max-cost needs the price of {model!r}: pass --price-in and --price-out (USD per million tokens)")
    ids = sorted(dev.pairs.loc[dev.pairs["attribute"] == attribute, "video_id"].unique())
    videos = {v.video_id: v for v in workspace.catalog.subset(ids)}
    spent = Spend(cost_usd=0.0 if config.price(model) else None)

    def measure(candidate: Taxonomy) -> tuple[dict[str, Any], pd.DataFrame]:
        nonlocal spent
        out_dir = artifacts_of(workspace).place("auto") / candidate.version
        summary = asyncio.run(engine.run(list(videos.values()), candidate, make_backend(), config, out_dir))
        spent = spent + Spend(summary.input_tokens, summary.output_tokens, summary.cost_usd)
        frame = read_annotations(out_dir)
        return dev_f1(dev, frame, [attribute]), frame

    def over_budget() -> bool:
        return max_cost is not None and spent.cost_usd is not None and spent.cost_usd >= max_cost

    base_score, frame = measure(taxonomy)
    best, best_score, parent = taxonomy, base_score["macro_f1"], ""
    rounds: list[Round] = []
    stop = "max_rounds"
    for number in range(1, max_rounds + 1):
        if over_budget():
            stop = "max_cost"
            break
        started = time.perf_counter()
        errors = attribute_errors(dev, frame, videos, attribute)
        before = spent
        proposal, spend = propose_definition(make_backend(), config, best[attribute], errors, threshold=dev.threshold,
                                             per_side=per_side, template=template)
        spent = spent + spend
        candidate = best.with_attribute(proposal.apply(best[attribute]))
        run_id = new_run_id()
        save_taxonomy(workspace, candidate, run_id)
        score, candidate_frame = measure(candidate)
        improved = score["macro_f1"] > best_score
        round_cost = None if spent.cost_usd is None else spent.cost_usd - (before.cost_usd or 0.0)
        run = record_run(
            workspace,
            "iterate",
            lineage=Lineage(candidate.version, "", model, dev.version, "dev"),
            config={"mode": "llm-auto", "round": number, "attribute": attribute, "base_taxonomy_version": best.version},
            metrics={**score, "base_f1": best_score, "proposal": proposal.model_dump()},
            cost_usd=round_cost,
            duration_s=time.perf_counter() - started,
            parent_id=parent or None,
            note="improved dev F1" if improved else "no dev F1 improvement: stopped",
            run_id=run_id,
        )
        rounds.append(Round(number, candidate.version, score["macro_f1"], score["macro_f1_ci"], improved, run.run_id,
                            round_cost, detail={"proposal": proposal.model_dump()}))
        if progress:
            progress(rounds[-1])
        if not improved:
            stop = "no_improvement"
            break
        best, best_score, parent, frame = candidate, score["macro_f1"], run.run_id, candidate_frame
    return {
        "mode": "llm-auto",
        "attribute": attribute,
        "base_version": taxonomy.version,
        "base_dev_f1": base_score["macro_f1"],
        "rounds": [r.__dict__ for r in rounds],
        "best_version": best.version,
        "best_dev_f1": best_score,
        "stopped": stop,
        "cost_usd": spent.cost_usd,
        "input_tokens": spent.input_tokens,
        "output_tokens": spent.output_tokens,
    }
