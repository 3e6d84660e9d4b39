"""The evidence teacher: every vibe learned from the humans (golden dev) over all the evidence a workspace has.

This is not an LLM. It reads, per video, the text embedding, the catalog tags, every declared extra tag
source, the collaborative item factors (with popularity), and per (video, vibe) the zero-shot similarity
of the text to the vibe's definition, the similarity of the video's tags to the vibe's name and aliases,
and the scores of any LLM annotation run present, so an LLM's word is weighed against the humans'
instead of taken as is (stacking).

The model is one kernel ridge regression over all golden dev pairs at once, with a multi-task kernel:
two pairs are alike as their videos are alike (a weighted sum of linear kernels, one per evidence
group), times ``[same vibe] + share``, so a vibe with 30 pairs borrows strength from the others instead of
getting a wild model of its own. Pair features get ``[same vibe] + 1``: "close to the definition" means
the same thing for every vibe. The target is a soft one from the raters (``GoldenSet.targets``). The
regularisation, the sharing, each group's weight and the target are chosen by leave-one-video-out
cross-validation on dev (closed form, one matrix inverse per candidate: cheap), and so is the
ablation table. Scores are calibrated on the out-of-fold predictions (one logistic regression with
per-vibe slopes and intercepts shrunk towards shared ones).

Every linear kernel has a primal form, and the pair features other than the LLM's are linear in the
video blocks, so the fitted teacher is one linear model per vibe over the video blocks: exactly what
a linear student can learn back. Its labels of golden dev videos are in-sample (it learned there);
its honest quality is the out-of-fold one in its ablation table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.linalg
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ..annotation import SCHEMA, annotations_frame, read_annotations
from ..artifacts import Artifact, Artifacts, Stamp
from ..calibration import calibrate_catalog, logit
from ..encoder import Encoder
from ..errors import DataError
from ..golden import TARGETS, GoldenSet
from ..hashing import content_hash
from ..tag_sources import tag_matrix, workspace_tag_sources
from ..taxonomy import Taxonomy
from ..workspace import Workspace

PART = "part-evidence.parquet"
STATE = "evidence.json"
HELDOUT = "dev-heldout.parquet"
PAIR_SHARE = 1.0
TAG_SIMILARITY_FLOOR = 0.3  # MiniLM cosine of unrelated short phrases sits below this
LAMBDAS = (10.0, 30.0, 100.0)
SHARES = (0.0, 0.3)
WEIGHTS = (0.0, 2.0)  # tried against the current 1.0, one group at a time


# -- the evidence -------------------------------------------------------------------------------------
@dataclass
class Evidence:
    """Every catalog video's evidence: video blocks (videos x width) and pair blocks (videos x vibes).

    ``maps[p][g]`` writes pair block ``p`` as ``video[g] @ maps[p][g]`` summed over ``g`` (the pair
    features that are linear in the video blocks); the LLM's scores have no map.
    """

    ids: list[str]
    attributes: list[str]
    video: dict[str, np.ndarray]
    pair: dict[str, np.ndarray]
    maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        return [*self.video, *self.pair]

    def rows(self, video_ids: Sequence[str]) -> np.ndarray:
        return pd.Index(self.ids).get_indexer(pd.Index(list(video_ids)))


def tags_block(tags: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    """One-hot catalog tags over ``vocabulary`` (the student's ``tags`` group, the same columns)."""
    column = {tag: j for j, tag in enumerate(vocabulary)}
    matrix = np.zeros((len(tags), len(vocabulary)), dtype=np.float32)
    for i, row in enumerate(tags):
        matrix[i, [column[t] for t in row if t in column]] = 1.0
    return matrix


def cf_block(ids: Sequence[str], collaborative: Any) -> np.ndarray:
    """Warm items' factors, log1p(interactions) and a has_cf flag (the student's ``cf`` group); zeros when cold."""
    index = pd.Index(collaborative.item_ids_).get_indexer(pd.Index(list(ids)))
    found = index >= 0
    found[found] = ~collaborative.cold_[index[found]]
    block = np.zeros((len(ids), collaborative.factors + 2), dtype=np.float32)
    block[found, :-2] = collaborative.item_factors_[index[found]]
    block[found, -2] = np.log1p(collaborative.popularity_[index[found]])
    block[found, -1] = 1.0
    return block


def _similarity_map(encoder: Encoder, vocabulary: Sequence[str], vibes: np.ndarray) -> np.ndarray:
    """tags x vibes: how close a tag's text is to a vibe's name and aliases (0 below the floor, squared above)."""
    if not len(vocabulary):
        return np.zeros((0, vibes.shape[0]), dtype=np.float32)
    similarity = encoder.encode(list(vocabulary)) @ vibes.T
    return (np.maximum(similarity - TAG_SIMILARITY_FLOOR, 0.0) ** 2).astype(np.float32)


def gather_evidence(
    workspace: Workspace, taxonomy: Taxonomy, encoder: Encoder, *, ids: Sequence[str], text: np.ndarray,
    tags: Sequence[Sequence[str]], collaborative: Any | None = None, llm: pd.DataFrame | None = None,
) -> Evidence:
    """The evidence of the catalog videos ``ids`` (their text embeddings and catalog tags in that order)."""
    ids = [str(v) for v in ids]
    names = taxonomy.names
    video: dict[str, np.ndarray] = {"text": np.ascontiguousarray(text, dtype=np.float32)}
    vocabularies = {"tags": sorted({t for row in tags for t in row})}
    if vocabularies["tags"]:
        video["tags"] = tags_block(tags, vocabularies["tags"])
    if collaborative is not None:
        video["cf"] = cf_block(ids, collaborative)
    for name, rows in workspace_tag_sources(workspace).items():
        config = next(s for s in workspace.config.tag_sources if s.name == name)
        matrix, vocabulary = tag_matrix(rows, ids, min_videos=config.min_videos)
        if vocabulary:
            video[name], vocabularies[name] = matrix, vocabulary
    definitions = encoder.encode([attribute.describe() for attribute in taxonomy])
    vibe_words = encoder.encode([", ".join([a.name.replace("-", " "), *a.aliases]) for a in taxonomy])
    pair = {"zero-shot": video["text"] @ definitions.T}
    maps = {"zero-shot": {"text": definitions.T.astype(np.float32)}}
    tag_groups = [g for g in video if g not in ("text", "cf")]
    if tag_groups:
        maps["tag-similarity"] = {g: _similarity_map(encoder, vocabularies[g], vibe_words) for g in tag_groups}
        pair["tag-similarity"] = sum(video[g] @ maps["tag-similarity"][g] for g in tag_groups)
    if llm is not None and len(llm):
        pair["llm"] = _llm_block(llm, ids, names)
    lineage = {"groups": {g: int(b.shape[1]) for g, b in video.items()}, "pair_groups": list(pair),
               "encoder": encoder.name, "tag_sources": [s.name for s in workspace.config.tag_sources]}
    return Evidence(ids, list(names), video, {k: np.asarray(v, dtype=np.float32) for k, v in pair.items()},
                    maps, vocabularies, lineage)


def _llm_block(llm: pd.DataFrame, ids: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """videos x vibes logit of the LLM runs' scores (their mean where several runs scored a pair); NaN where none did."""
    table = llm[llm["score"].notna()].assign(logit=lambda f: logit(f["score"].to_numpy(float).clip(0.01, 0.99)))
    wide = table.pivot_table(index="video_id", columns="attribute", values="logit", aggfunc="mean")
    return wide.reindex(index=list(ids), columns=list(names)).to_numpy(np.float32)


def llm_annotations(artifacts: Artifacts, taxonomy: Taxonomy) -> dict[str, Artifact]:
    """Every complete LLM annotations artifact of the workspace made under ``taxonomy``."""
    found = {}
    for name in artifacts.annotation_names():
        artifact = artifacts.annotations(name)
        manifest = artifact.manifest()
        if manifest.complete and manifest.lineage.get("source") == "llm" and \
                manifest.lineage.get("taxonomy_version") == taxonomy.version:
            found[name] = artifact
    return found


def read_llm(artifacts: Mapping[str, Artifact]) -> pd.DataFrame | None:
    frames = [read_annotations(artifact) for artifact in artifacts.values()]
    return pd.concat(frames, ignore_index=True) if frames else None


def workspace_evidence(workspace: Workspace, taxonomy: Taxonomy, *, shards: Artifact, collaborative: Artifact | None = None,
                       llm: Mapping[str, Artifact] | None = None) -> Evidence:
    """The evidence of every catalog video, from the pipeline's artifacts (shards, cf, LLM annotations)."""
    from ..encoder import workspace_encoder
    from ..retrieval.collaborative import load_collaborative
    from ..shards import read_embeddings

    ids, text, tags = read_embeddings(shards)
    model = load_collaborative(collaborative) if collaborative is not None else None
    return gather_evidence(workspace, taxonomy, workspace_encoder(workspace), ids=ids, text=text, tags=tags,
                           collaborative=model, llm=read_llm(llm or {}))


# -- the model ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Params:
    """One candidate: ridge penalty, sharing across vibes, the training target and each group's weight (1 unless set)."""

    lam: float = 30.0
    share: float = 0.0
    target: str = "rating"
    weights: tuple[tuple[str, float], ...] = ()

    def weight(self, group: str) -> float:
        return dict(self.weights).get(group, 1.0)

    def with_weight(self, group: str, value: float) -> "Params":
        return replace(self, weights=tuple(sorted({**dict(self.weights), group: value}.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"lambda": self.lam, "share": self.share, "target": self.target, "weights": dict(self.weights)}


@dataclass
class Scaling:
    """Centre (column means; per-vibe means for pair blocks) and one scale per group, over the catalog,
    so every group starts with the same weight in the kernel."""

    center: dict[str, np.ndarray]
    scale: dict[str, float]

    @classmethod
    def of(cls, evidence: Evidence) -> "Scaling":
        center, scale = {}, {}
        for group, block in {**evidence.video, **evidence.pair}.items():
            center[group] = np.nanmean(block, axis=0) if np.isfinite(block).any() else np.zeros(block.shape[1])
            spread = np.nanmean(np.nansum((block - center[group]) ** 2, axis=1)) if group in evidence.video else \
                np.nanmean((block - center[group]) ** 2)
            scale[group] = float(np.sqrt(spread)) if spread > 1e-12 else 1.0
        return cls(center, scale)

    def video(self, evidence: Evidence, group: str, rows: np.ndarray) -> np.ndarray:
        return (evidence.video[group][rows] - self.center[group]) / self.scale[group]

    def pair(self, evidence: Evidence, group: str, rows: np.ndarray, vibes: np.ndarray) -> np.ndarray:
        values = (evidence.pair[group][rows, vibes] - self.center[group][vibes]) / self.scale[group]
        return np.nan_to_num(values, nan=0.0)  # an absent LLM score says nothing


class Design:
    """The training pairs with their kernels' parts, computed once: a Gram matrix of the pairs' videos per
    video group, the pair features per pair group, and which pairs share a vibe or a video."""

    def __init__(self, evidence: Evidence, scaling: Scaling, pairs: pd.DataFrame, targets: Mapping[str, np.ndarray]) -> None:
        self.rows = evidence.rows(pairs["video_id"])
        self.vibes = pd.Index(evidence.attributes).get_indexer(pairs["attribute"])
        self.truth = pairs["label"].to_numpy(bool)
        self.targets = dict(targets)
        self.count = len(evidence.attributes)
        self.gram = {}
        for group in evidence.video:
            block = scaling.video(evidence, group, self.rows)
            self.gram[group] = (block @ block.T).astype(np.float32)
        self.pair = {group: scaling.pair(evidence, group, self.rows, self.vibes).astype(np.float32) for group in evidence.pair}
        self.same = (self.vibes[:, None] == self.vibes[None, :]).astype(np.float32)
        codes = pd.factorize(pairs["video_id"])[0]
        order = np.argsort(codes, kind="stable")
        self.videos = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)

    def kernel(self, params: Params) -> np.ndarray:
        video = np.zeros(self.same.shape, dtype=np.float32)
        for group, gram in self.gram.items():
            if params.weight(group):
                video += params.weight(group) * gram
        kernel = video * (self.same + params.share)
        for group, values in self.pair.items():
            if params.weight(group):
                kernel += params.weight(group) * np.outer(values, values) * (self.same + PAIR_SHARE)
        return kernel

    def centres(self, target: np.ndarray) -> np.ndarray:
        overall = float(target.mean())
        return np.array([target[self.vibes == a].mean() if (self.vibes == a).any() else overall for a in range(self.count)])

    def fit(self, params: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dual coefficients, per-vibe centres, leave-one-video-out predictions) for ``params``.

        With ``A = K + lambda I`` and ``alpha = A^-1 r``, the prediction for a video's pairs from the model
        fitted without them is ``r_g - (A^-1)_gg^-1 alpha_g`` (the block form of the GP leave-one-out
        identity), so one Cholesky factorisation gives every fold at once.
        """
        target = self.targets[params.target]
        centre = self.centres(target)
        residual = target - centre[self.vibes]
        matrix = self.kernel(params)
        matrix[np.diag_indices_from(matrix)] += params.lam
        factor, info = scipy.linalg.lapack.spotrf(matrix, lower=True, clean=True, overwrite_a=True)
        if not info:
            inverse, info = scipy.linalg.lapack.spotri(factor, lower=True, overwrite_c=True)
        if info:
            raise DataError(f"the evidence kernel is not positive definite (LAPACK info {info}); raise the penalty")
        inverse = np.tril(inverse) + np.tril(inverse, -1).T
        alpha = (inverse @ residual.astype(np.float32)).astype(float)
        held = np.empty_like(residual)
        for rows in self.videos:
            held[rows] = residual[rows] - np.linalg.solve(inverse[np.ix_(rows, rows)], alpha[rows])
        return alpha, centre, held + centre[self.vibes]


def fit_calibrator(decision: np.ndarray, vibes: np.ndarray, truth: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-vibe (slope, intercept) of ``sigmoid(slope * decision + intercept)``: one logistic regression with a
    shared slope plus per-vibe slopes and intercepts, all shrunk by the L2 penalty towards the shared ones."""
    onehot = np.eye(count)[vibes]
    design = np.hstack([decision[:, None], decision[:, None] * onehot, onehot])
    model = LogisticRegression(C=1.0, max_iter=5000).fit(design, truth)
    coef = model.coef_[0]
    return coef[0] + coef[1 : count + 1], model.intercept_[0] + coef[count + 1 :]


def _calibrated(decision: np.ndarray, vibes: np.ndarray, slope: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(slope[vibes] * decision + intercept[vibes])))


def cv_score(design: Design, held: np.ndarray, rows: np.ndarray | None = None) -> dict[str, float]:
    """Micro and macro ROC-AUC of calibrated out-of-fold scores against the consensus labels."""
    rows = np.arange(len(held)) if rows is None else rows
    vibes, truth = design.vibes[rows], design.truth[rows]
    slope, intercept = fit_calibrator(held[rows], vibes, truth, design.count)
    score = _calibrated(held[rows], vibes, slope, intercept)
    per_vibe = [roc_auc_score(truth[vibes == a], score[vibes == a]) for a in np.unique(vibes)
                if len(np.unique(truth[vibes == a])) == 2]
    micro = float(roc_auc_score(truth, score)) if len(np.unique(truth)) == 2 else float("nan")
    macro = float(np.mean(per_vibe)) if per_vibe else float("nan")
    return {"micro_auc": micro, "macro_auc": macro, "objective": (micro + macro) / 2}


@dataclass
class Search:
    """Every candidate tried on one design: its score and out-of-fold predictions, by parameters."""

    design: Design
    rows: np.ndarray | None = None
    tried: dict[Params, tuple[dict[str, float], np.ndarray]] = field(default_factory=dict)
    progress: Callable[[str], None] | None = None

    def score(self, params: Params) -> float:
        if params not in self.tried:
            if self.progress:
                self.progress(f"evidence teacher: cross-validating candidate {len(self.tried) + 1}")
            held = self.design.fit(params)[2]
            self.tried[params] = (cv_score(self.design, held, self.rows), held)
        return self.tried[params][0]["objective"]

    def best(self, candidates: Sequence[Params], current: Params) -> Params:
        return max([current, *candidates], key=self.score)

    def run(self, start: Params, groups: Sequence[str], targets: Sequence[str] = TARGETS) -> Params:
        """Target, penalty and sharing, then one coordinate pass over the groups' weights."""
        best = self.best([replace(start, target=t) for t in targets], start)
        best = self.best([replace(best, lam=lam) for lam in LAMBDAS], best)
        best = self.best([replace(best, share=share) for share in SHARES], best)
        for group in groups:
            best = self.best([best.with_weight(group, w) for w in WEIGHTS], best)
        return best

    def table(self) -> list[dict[str, Any]]:
        return [{**params.to_dict(), **score} for params, (score, _) in self.tried.items()]


def ablation(search: Search, chosen: Params, groups: Sequence[str]) -> list[dict[str, Any]]:
    """What each evidence group adds: the chosen model, then without each group (out-of-fold on dev)."""
    rows = [("all evidence (chosen)", chosen)]
    rows += [(f"without {g}", chosen.with_weight(g, 0.0)) for g in groups if chosen.weight(g)]
    rows += [(f"{g} only", replace(chosen, weights=tuple((h, float(h == g)) for h in groups))) for g in ("text", "zero-shot")
             if g in groups]
    search.score(chosen)
    base = search.tried[chosen][0]
    table = []
    for label, params in rows:
        search.score(params)
        score = search.tried[params][0]
        table.append({"evidence": label, "micro_auc": score["micro_auc"], "macro_auc": score["macro_auc"],
                      "delta_micro_auc": score["micro_auc"] - base["micro_auc"],
                      "delta_macro_auc": score["macro_auc"] - base["macro_auc"]})
    return table


@dataclass
class LinearVibes:
    """The fitted teacher as one linear model per vibe over the raw video blocks (plus the LLM's term):
    ``decision = sum_g X_g @ weights[g] + const (+ llm * (llm_logit - llm_center) / llm_scale)``, and
    ``score = sigmoid(slope * decision + intercept)`` per vibe."""

    weights: dict[str, np.ndarray]
    const: np.ndarray
    slope: np.ndarray
    intercept: np.ndarray
    llm: np.ndarray | None = None
    llm_center: np.ndarray | None = None
    llm_scale: float = 1.0

    def decision(self, evidence: Evidence, rows: np.ndarray | None = None) -> np.ndarray:
        rows = np.arange(len(evidence.ids)) if rows is None else rows
        out = np.tile(self.const, (len(rows), 1))
        for group, weights in self.weights.items():
            out += evidence.video[group][rows] @ weights
        if self.llm is not None:
            values = (evidence.pair["llm"][rows] - self.llm_center) / self.llm_scale
            out += np.nan_to_num(values, nan=0.0) * self.llm
        return out

    def proba(self, evidence: Evidence, rows: np.ndarray | None = None) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.decision(evidence, rows) * self.slope + self.intercept)))


def primal(evidence: Evidence, scaling: Scaling, design: Design, params: Params, alpha: np.ndarray, centre: np.ndarray,
           calibration: tuple[np.ndarray, np.ndarray]) -> LinearVibes:
    """The dual solution written as per-vibe weights on the raw blocks (pair features folded in through their maps)."""
    count = len(evidence.attributes)
    onehot = np.eye(count)[design.vibes]
    mix = alpha[:, None] * (onehot + params.share)
    weights = {g: np.zeros((b.shape[1], count)) for g, b in evidence.video.items()}
    const = centre.astype(float).copy()
    llm: dict[str, Any] = {}
    for group in evidence.video:
        if params.weight(group):
            coef = params.weight(group) * scaling.video(evidence, group, design.rows).T @ mix / scaling.scale[group]
            weights[group] += coef
            const -= scaling.center[group] @ coef
    for group in evidence.pair:
        if not params.weight(group):
            continue
        gamma = params.weight(group) * (alpha * design.pair[group]) @ (onehot + PAIR_SHARE)  # on the scaled feature
        if group not in evidence.maps:  # the LLM's scores: applied where present
            llm = {"llm": gamma, "llm_center": scaling.center[group], "llm_scale": scaling.scale[group]}
            continue
        coef = gamma / scaling.scale[group]
        const -= coef * scaling.center[group]
        for video_group, mapping in evidence.maps[group].items():
            weights[video_group] += mapping * coef[None, :]
    kept = {g: w.astype(np.float32) for g, w in weights.items() if np.any(w)}
    return LinearVibes(kept, const, *calibration, **llm)


# -- the teacher --------------------------------------------------------------------------------------
MIN_STACKED_PAIRS = 30


class EvidenceTeacher:
    """Fitted on golden dev over the catalog's ``Evidence``; labels the catalog, calibrated for it.

    ``objective`` and ``base_rate`` choose the catalog thresholds (``calibration.calibrate_catalog``).
    After ``fit``: ``params_`` (the chosen candidate), ``search_`` (every candidate's CV score),
    ``ablation_``, ``model_`` (``LinearVibes``), ``stacked_`` (the model with the LLM's scores, or None),
    ``oof_`` (dev pairs with out-of-fold scores) and ``calibration_`` (per vibe).
    """

    name = "evidence"
    source = "evidence"

    def __init__(self, *, objective: str = "precision:0.6", base_rate: str = "bounds",
                 progress: Callable[[str], None] | None = None) -> None:
        self.objective = objective
        self.base_rate = base_rate
        self.progress = progress

    def fit(self, evidence: Evidence, dev: GoldenSet, taxonomy: Taxonomy) -> "EvidenceTeacher":
        known = dev.pairs["video_id"].isin(set(evidence.ids)).to_numpy()
        pairs = dev.pairs[known].reset_index(drop=True)
        if pairs.empty or pairs["label"].nunique() < 2:
            raise DataError("golden dev has no pairs of both labels among the catalog's videos; the evidence teacher "
                            "learns from them")
        targets = {kind: dev.targets(kind)[known] for kind in TARGETS}
        scaling = Scaling.of(evidence)
        groups = [g for g in evidence.groups if g != "llm"]
        design = Design(evidence, scaling, pairs, targets)
        search = Search(design, progress=self.progress)
        chosen = search.run(Params().with_weight("llm", 0.0) if "llm" in evidence.pair else Params(), groups)
        self.ablation_ = ablation(search, chosen, groups)
        alpha, centre, held = design.fit(chosen)
        calibration = fit_calibrator(held, design.vibes, design.truth, len(evidence.attributes))
        self.model_ = primal(evidence, scaling, design, chosen, alpha, centre, calibration)
        oof = _calibrated(held, design.vibes, *calibration)
        self.stacked_, self.stacking_ = None, {}
        if "llm" in evidence.pair:
            oof = self._stack(evidence, scaling, design, pairs, targets, chosen, held, oof)
        self.params_, self.search_ = chosen, search.table()
        self.oof_ = pairs[["video_id", "attribute", "label"]].assign(score=oof)
        self.attributes_ = list(evidence.attributes)
        self.taxonomy_version_, self.golden_version_ = taxonomy.version, dev.version
        self.evidence_ = dict(evidence.lineage)
        declared = {a.name: a.base_rate for a in taxonomy}
        self.calibration_ = calibrate_catalog(design.vibes, design.truth, oof, self.predict_proba(evidence),
                                              self.attributes_, declared, self.objective, self.base_rate)
        return self

    def _stack(self, evidence, scaling, design, pairs, targets, chosen, held, oof) -> np.ndarray:
        """Refit with the LLM's scores as one more group on the pairs it scored; keep it where it beats the base."""
        covered = np.isfinite(evidence.pair["llm"][design.rows, design.vibes])
        if covered.sum() < MIN_STACKED_PAIRS or len(np.unique(design.truth[covered])) < 2:
            return oof
        sub = Design(evidence, scaling, pairs[covered].reset_index(drop=True), {k: v[covered] for k, v in targets.items()})
        search = Search(sub, progress=self.progress)
        stacked = search.best([chosen.with_weight("llm", w) for w in WEIGHTS[1:] + (4.0,)], chosen)
        base = cv_score(design, held, np.flatnonzero(covered))
        self.stacking_ = {"pairs": int(covered.sum()), "base": base, "stacked": search.tried[stacked][0],
                          "llm_weight": stacked.weight("llm")}
        if not stacked.weight("llm") or search.tried[stacked][0]["objective"] <= base["objective"]:
            return oof
        alpha, centre, held_stacked = sub.fit(stacked)
        calibration = fit_calibrator(held_stacked, sub.vibes, sub.truth, len(evidence.attributes))
        self.stacked_ = primal(evidence, scaling, sub, stacked, alpha, centre, calibration)
        oof = oof.copy()
        oof[covered] = _calibrated(held_stacked, sub.vibes, *calibration)
        return oof

    # -- labelling -------------------------------------------------------------------------------
    def predict_proba(self, evidence: Evidence, rows: np.ndarray | None = None) -> np.ndarray:
        """Calibrated scores (videos x vibes) on the golden set's scale; the stacked model where the LLM scored a pair."""
        scores = self.model_.proba(evidence, rows)
        if self.stacked_ is not None:
            llm = evidence.pair["llm"] if rows is None else evidence.pair["llm"][rows]
            scores = np.where(np.isfinite(llm), self.stacked_.proba(evidence, rows), scores)
        return scores

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([self.calibration_[name]["threshold"] for name in self.attributes_])

    @property
    def version(self) -> str:
        parts = [self.params_.to_dict(), self.thresholds.tolist(), self.golden_version_, self.taxonomy_version_]
        parts += [content_hash(w.tobytes().hex(), 16) for w in self.model_.weights.values()]
        return content_hash(parts)

    def annotate(self, evidence: Evidence, taxonomy: Taxonomy, run_id: str = "") -> pd.DataFrame:
        """Annotations of every video of ``evidence`` (on golden dev, where it learned, they are in-sample:
        its out-of-fold quality is ``ablation_[0]``)."""
        if taxonomy.version != self.taxonomy_version_:
            raise DataError(f"the evidence teacher was fitted on taxonomy {self.taxonomy_version_}, not {taxonomy.version}")
        scores = self.predict_proba(evidence)
        count = len(self.attributes_)
        flat = scores.reshape(-1).astype(np.float32)
        return annotations_frame({
            "video_id": np.repeat(np.asarray(evidence.ids, dtype=object), count),
            "attribute": np.tile(self.attributes_, len(evidence.ids)),
            "score": flat, "label": flat >= np.tile(self.thresholds, len(evidence.ids)),
            "evidence": "", "source": self.source, "model": f"evidence-{self.version}", "run_id": run_id,
            "prompt_version": self.version, "taxonomy_version": taxonomy.version,
        })

    # -- persistence ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"version": self.version, "params": self.params_.to_dict(), "objective": self.objective,
                "base_rate": self.base_rate, "taxonomy_version": self.taxonomy_version_,
                "golden_version": self.golden_version_, "evidence": self.evidence_, "search": self.search_,
                "ablation": self.ablation_, "stacking": self.stacking_, "calibration": self.calibration_,
                "attributes": self.attributes_}

    def save(self, artifact: Artifact, stamp: Stamp) -> None:
        """The fitted teacher as an ``evidence`` artifact: its state (JSON) and per-vibe weights (``.npy``)."""
        stamp.lineage = {"model": f"evidence-{self.version}", "prompt_version": self.version,
                         "taxonomy_version": self.taxonomy_version_, "golden_version": self.golden_version_,
                         **(stamp.lineage or {})}
        stamp.meta = {"params": self.params_.to_dict(), "ablation": self.ablation_, **(stamp.meta or {})}
        with artifact.replace(stamp) as staging:
            (staging / STATE).write_text(json.dumps(self.state(), indent=2, default=float), encoding="utf-8")
            self.oof_.to_parquet(staging / HELDOUT, index=False)
            for prefix, model in (("base", self.model_), ("stacked", self.stacked_)):
                for group, weights in (model.weights.items() if model is not None else ()):
                    np.save(staging / f"{prefix}-{group}.npy", weights, allow_pickle=False)


def heldout_scores(artifact: Artifact) -> pd.DataFrame:
    """The evidence teacher's out-of-fold scores of golden dev pairs (video_id, attribute, label, score)."""
    artifact.complete_manifest()
    return artifact.read(HELDOUT, pd.read_parquet)


def write_labels(frame: pd.DataFrame, teacher: EvidenceTeacher, artifact: Artifact, stamp: Stamp) -> dict[str, Any]:
    """The teacher's labels as an annotations artifact (one writer; replaced whole)."""
    stamp.lineage = {"source": teacher.source, "model": f"evidence-{teacher.version}", "prompt_version": teacher.version,
                     "taxonomy_version": teacher.taxonomy_version_, "golden_version": teacher.golden_version_,
                     **(stamp.lineage or {})}
    stamp.meta = {"videos": int(frame["video_id"].nunique()), "attributes": len(teacher.attributes_), **(stamp.meta or {})}
    with artifact.replace(stamp) as staging:
        pq.write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False), staging / PART)
    return {"videos": stamp.meta["videos"], "version": teacher.version}
