"""The evidence teacher's machinery on data whose answer is known: the leave-one-video-out identity, the
primal form, stacking an LLM, catalog base rates and thresholds, soft targets, tag sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vibeset.annotate.evidence import Design, EvidenceTeacher, Evidence, Params, Scaling, primal, fit_calibrator
from vibeset.calibration import base_rate, calibrate_catalog, catalog_threshold, prior_shift
from vibeset.errors import ConfigError
from vibeset.golden import GoldenSet
from vibeset.tag_sources import read_tag_source, tag_matrix
from vibeset.taxonomy import Attribute, Taxonomy, parse_taxonomy
from vibeset.workspace import TagSourceConfig, Workspace, WorkspaceConfig, load_workspace

VIBES = ["bright", "gloomy", "loud"]


def synthetic(videos: int = 120, seed: int = 0, llm_quality: float | None = None) -> tuple[Evidence, GoldenSet, Taxonomy]:
    """Videos with a 12-d 'text' block; each vibe is a noisy linear function of it; 2-3 raters per pair."""
    rng = np.random.default_rng(seed)
    ids = [f"v{i}" for i in range(videos)]
    text = rng.normal(size=(videos, 12)).astype(np.float32)
    definitions = rng.normal(size=(12, len(VIBES))).astype(np.float32)
    latent = text @ definitions + rng.normal(scale=1.5, size=(videos, len(VIBES)))
    truth = latent > 0.3
    pair = {"zero-shot": text @ definitions}
    if llm_quality is not None:
        noisy = np.where(rng.random(truth.shape) < llm_quality, truth, ~truth)
        llm = np.where(noisy, 1.5, -1.5) + rng.normal(scale=0.3, size=truth.shape)
        llm[videos // 2:] = np.nan  # the LLM scored half the videos
        pair["llm"] = llm.astype(np.float32)
    evidence = Evidence(ids, VIBES, {"text": text}, {k: np.asarray(v, np.float32) for k, v in pair.items()},
                        {"zero-shot": {"text": definitions}})
    rows, judgements = [], []
    for i, video in enumerate(ids):
        for j, vibe in enumerate(VIBES):
            ratings = np.clip(np.rint(rng.normal(4.2 if truth[i, j] else 1.9, 0.9, size=int(rng.integers(1, 4)))), 1, 5)
            judgements += [{"rater": f"r{k}", "video_id": video, "attribute": vibe, "rating": float(r)} for k, r in enumerate(ratings)]
            rows.append({"video_id": video, "attribute": vibe, "n_raters": len(ratings), "mean_rating": float(ratings.mean()),
                         "label": bool(ratings.mean() >= 3.5), "split": "dev" if i % 4 else "test"})
    golden = GoldenSet(pd.DataFrame(rows), pd.DataFrame(judgements), 3.5, 4.0)
    taxonomy = Taxonomy(name="t", attributes=tuple(Attribute(name=v, definition=f"the video feels {v}") for v in VIBES))
    return evidence, golden, taxonomy


def _design(evidence: Evidence, dev: GoldenSet) -> Design:
    return Design(evidence, Scaling.of(evidence), dev.pairs, {k: dev.targets(k) for k in ("consensus", "share", "rating")})


def test_leave_one_video_out_in_closed_form_equals_refitting_without_the_video() -> None:
    evidence, golden, _ = synthetic(40)
    dev = golden.split("dev")
    design = _design(evidence, dev)
    params = Params(lam=3.0, share=0.3, target="rating")
    _, _, held = design.fit(params)
    target = design.targets["rating"]
    kernel = design.kernel(params).astype(float)
    for rows in design.videos[:5]:
        keep = np.setdiff1d(np.arange(len(target)), rows)
        centre = design.centres(target)  # centres of all pairs, as the closed form uses
        alpha = np.linalg.solve(kernel[np.ix_(keep, keep)] + params.lam * np.eye(len(keep)), (target - centre[design.vibes])[keep])
        refit = kernel[np.ix_(rows, keep)] @ alpha + centre[design.vibes[rows]]
        np.testing.assert_allclose(held[rows], refit, atol=2e-4)


def test_the_primal_form_predicts_what_the_dual_does() -> None:
    evidence, golden, _ = synthetic(60)
    design = _design(evidence, golden.split("dev"))
    params = Params(lam=5.0, share=0.5, target="consensus").with_weight("zero-shot", 2.0)
    alpha, centre, _ = design.fit(params)
    dual = design.kernel(params).astype(float) @ alpha + centre[design.vibes]
    model = primal(evidence, Scaling.of(evidence), design, params, alpha, centre, (np.ones(3), np.zeros(3)))
    assert set(model.weights) == {"text"}  # the zero-shot similarity folded into the text weights
    np.testing.assert_allclose(model.decision(evidence, design.rows)[np.arange(len(design.rows)), design.vibes], dual, atol=1e-3)


def test_teacher_beats_its_zero_shot_feature_labels_within_the_band_and_reports_an_ablation() -> None:
    evidence, golden, taxonomy = synthetic(160)
    teacher = EvidenceTeacher().fit(evidence, golden.split("dev"), taxonomy)
    rows = {r["evidence"]: r for r in teacher.ablation_}
    assert rows["all evidence (chosen)"]["micro_auc"] > 0.75
    assert {"text only", "zero-shot only"} <= set(rows) and any(name.startswith("without") for name in rows)
    frame = teacher.annotate(evidence, taxonomy)
    assert len(frame) == 160 * 3 and frame["score"].between(0, 1).all()
    shares = frame.groupby("attribute")["label"].mean()
    for vibe, row in teacher.calibration_.items():
        assert 0.5 * row["base_rate"] - 1e-9 <= shares[vibe] <= 2 * row["base_rate"] + 1e-9
    test = golden.split("test").pairs.merge(frame, on=["video_id", "attribute"])
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(test["label_x"], test["score"]) > 0.75  # never saw these labels


@pytest.mark.parametrize("quality, stacked", [(0.95, True), (0.5, False)])
def test_an_llm_is_stacked_only_where_it_adds_to_the_humans(quality: float, stacked: bool) -> None:
    evidence, golden, taxonomy = synthetic(200, seed=1, llm_quality=quality)
    teacher = EvidenceTeacher().fit(evidence, golden.split("dev"), taxonomy)
    assert (teacher.stacked_ is not None) == stacked, teacher.stacking_
    assert teacher.params_.weight("llm") == 0.0  # the base model never reads the LLM (it is absent for half the videos)
    scores = teacher.predict_proba(evidence)
    assert np.isfinite(scores).all()


def test_calibrator_shrinks_per_vibe_slopes_towards_a_shared_one() -> None:
    rng = np.random.default_rng(0)
    decision = rng.normal(size=600)
    vibes = np.repeat([0, 1, 2], 200)
    truth = rng.random(600) < 1 / (1 + np.exp(-2 * decision))
    slope, intercept = fit_calibrator(decision, vibes, truth, 4)
    assert np.all((slope > 1.0) & (slope < 3.0)) and slope[3] == pytest.approx(slope[3])  # an unseen vibe gets the shared slope
    assert np.isfinite(intercept).all()


# -- catalog base rates and thresholds -----------------------------------------------------------------
def _calibrated(prior: float, n: int, rng: np.random.Generator, train_prior: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Scores calibrated under ``train_prior`` for a catalog whose true prior is ``prior`` (pure prior shift)."""
    y = rng.random(n) < prior
    x = rng.normal(np.where(y, 1.0, -1.0), 1.0)
    odds = np.exp(2 * x) * train_prior / (1 - train_prior)
    return odds / (1 + odds), y


def test_prior_shift_recovers_a_known_catalog_prior() -> None:
    rng = np.random.default_rng(0)
    p, y = _calibrated(0.2, 20000, rng)
    assert p.mean() > 0.3  # the scores themselves overstate it
    assert prior_shift(p, 0.5) == pytest.approx(0.2, abs=0.02)
    dev_p, dev_y = _calibrated(0.5, 2000, rng)
    estimate = base_rate(p, dev_p, dev_y, "em")
    assert estimate == pytest.approx(0.2, abs=0.02) and base_rate(p, dev_p, dev_y, "mean") == pytest.approx(p.mean())
    with pytest.raises(ConfigError):
        base_rate(p, dev_p, dev_y, "guess")


def test_em_is_kept_between_a_floor_and_the_mean_score() -> None:
    rng = np.random.default_rng(1)
    dev_p, dev_y = _calibrated(0.5, 2000, rng)
    # most of the catalog looks less like the vibe than the golden negatives do; 3% looks like a golden positive
    catalog = np.r_[np.clip(rng.normal(0.2, 0.05, 4850), 0.01, 0.99), np.full(150, 0.97)]
    estimate = base_rate(catalog, dev_p, dev_y, "em")
    floor = 150 * 0.97 / 5000
    assert prior_shift(catalog, 0.5) < floor and estimate == pytest.approx(floor) and estimate < catalog.mean()


def test_catalog_threshold_meets_precision_at_the_base_rate_inside_the_band() -> None:
    rng = np.random.default_rng(2)
    dev_p, dev_y = _calibrated(0.5, 3000, rng)
    catalog, truth = _calibrated(0.2, 20000, rng)
    cut = catalog_threshold(dev_p, dev_y, catalog, 0.2, "precision:0.6")
    labelled = catalog >= cut["threshold"]
    assert cut["reached"] and 0.1 <= labelled.mean() <= 0.4
    assert truth[labelled].mean() == pytest.approx(0.6, abs=0.05)  # the precision it promised, on the catalog
    hard = catalog_threshold(dev_p, dev_y, catalog, 0.2, "precision:0.99")
    assert not hard["reached"] and 0.1 - 1e-9 <= hard["share_labelled"] <= 0.4 + 1e-9  # unreachable: best MCC, still in band
    table = calibrate_catalog(np.zeros(len(dev_p), int), dev_y, dev_p, catalog[:, None], ["v"], {"v": 0.05}, "mcc", "em")
    assert table["v"]["base_rate"] == 0.05 and table["v"]["base_rate_from"] == "taxonomy"
    assert 0.025 - 1e-9 <= table["v"]["share_labelled"] <= 0.1 + 1e-9


# -- the nouns ---------------------------------------------------------------------------------------
def test_soft_targets_count_raters_and_keep_the_rating() -> None:
    pairs = pd.DataFrame({"video_id": ["a", "b"], "attribute": ["x", "x"], "n_raters": [3, 1], "mean_rating": [11 / 3, 2.0],
                          "label": [True, False], "split": ["dev", "dev"]})
    judgements = pd.DataFrame({"rater": ["1", "2", "3", "1"], "video_id": ["a", "a", "a", "b"], "attribute": ["x"] * 4,
                               "rating": [5.0, 4.0, 2.0, 2.0]})
    golden = GoldenSet(pairs, judgements, 3.5, 4.0)
    np.testing.assert_allclose(golden.targets("consensus"), [1, 0])
    np.testing.assert_allclose(golden.targets("share"), [2.5 / 4, 0.5 / 2])
    np.testing.assert_allclose(golden.targets("rating"), [(11 / 3 - 1) / 4, 0.25])
    assert golden.split("dev").scale == (1.0, 5.0)


def test_tag_sources_are_read_through_their_mapping(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("movie,tags\n1,Dark; funny\n1,dark\n2,dark;;\n3,rare\n")
    (tmp_path / "vibeset.toml").write_text('taxonomy = "x.yaml"\n[catalog]\npath = "c.csv"\n'
                                           '[[tag_sources]]\nname = "s"\npath = "t.csv"\nvideo = "movie"\ntag = "tags"\nseparator = ";"\n')
    ws = load_workspace(tmp_path)
    rows = read_tag_source(ws, ws.config.tag_sources[0])
    assert rows.set_index(["video_id", "tag"])["count"].to_dict() == {("1", "dark"): 2, ("1", "funny"): 1, ("2", "dark"): 1,
                                                                     ("3", "rare"): 1}
    matrix, vocabulary = tag_matrix(rows, ["1", "2", "3", "4"], min_videos=2)
    assert vocabulary == ["dark"] and matrix[:, 0].tolist() == pytest.approx([np.log1p(2), np.log1p(1), 0, 0])
    with pytest.raises(Exception, match="unique"):
        WorkspaceConfig.model_validate({"taxonomy": "x", "catalog": {"path": "c"}, "tag_sources": [
            {"name": "a", "path": "p"}, {"name": "a", "path": "q"}]})
    assert isinstance(ws, Workspace) and isinstance(ws.config.tag_sources[0], TagSourceConfig)


def test_a_declared_base_rate_is_optional_and_leaves_old_versions_alone() -> None:
    text = "name: t\nattributes:\n  - name: dark\n    definition: a dark and grim film\n"
    plain = parse_taxonomy(text)
    declared = parse_taxonomy(text + "    base_rate: 0.1\n")
    assert plain["dark"].base_rate is None and declared["dark"].base_rate == 0.1
    assert plain.version != declared.version and "base_rate" not in plain.to_yaml()
    with pytest.raises(ConfigError, match="base_rate"):
        parse_taxonomy(text + "    base_rate: 1.5\n")
