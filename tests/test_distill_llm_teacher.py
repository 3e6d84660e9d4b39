"""An LLM teacher of known quality on a generated non-movie workspace: the student ends within 0.05 AUC of it.

The workspace is 240 short cooking / travel / workout videos with five vibes, written from phrase pools
so the text carries each vibe; synthetic raters judge them (a golden set with rater noise). The LLM is
a real OpenAI-protocol server on 127.0.0.1 (``LLMServer``, subclassed) that knows each video's vibes
and answers with a known error rate (and scripted 429 / 500 faults), so the teacher's AUC is known.
The whole pipeline runs through the CLI, from the golden set to the evaluation on golden test.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from llm_server import LLMServer
from vibeset.artifacts import artifacts_of
from vibeset.evaluation import read_metrics
from vibeset.workspace import load_workspace

VIBES = {
    "energetic": ["a fast, high-energy session that keeps you moving", "loud music and an explosive pace",
                  "sweat, sprints and non-stop action", "a frantic race against the clock", "pumping, intense and breathless"],
    "calm": ["slow, quiet and soothing", "a gentle, meditative rhythm", "peaceful breathing and soft light",
             "unhurried and relaxing from start to finish", "a serene, restful mood"],
    "funny": ["full of jokes and silly mistakes", "the host cannot stop laughing", "a hilarious disaster in the kitchen",
              "goofy banter and pranks", "comic mishaps at every step"],
    "cozy": ["warm blankets, candles and a rainy window", "a snug, homely afternoon", "comfort food by the fireplace",
             "soft sweaters and hot cocoa", "a warm and welcoming little home"],
    "scenic": ["breathtaking mountain views", "turquoise sea and endless beaches", "sweeping drone shots of valleys",
               "sunsets over ancient cliffs", "a stunning panorama of the coast"],
}
NEUTRAL = {
    "cooking": ["we prepare a simple pasta", "the recipe uses five ingredients", "chopping onions and garlic",
                "baking bread step by step"],
    "travel": ["a day trip by train", "visiting a small town market", "packing tips for a week away", "finding a cheap hostel"],
    "workout": ["a full-body routine", "exercises for the core", "stretching before the main set", "a beginner's plan"],
}
LEANING = {"cooking": "cozy", "travel": "scenic", "workout": "energetic"}
VIDEOS = 240
FLIP = 0.15  # the LLM's error rate per (video, vibe)


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16))


def generate(root: Path) -> dict[str, set[str]]:
    """Write catalog, taxonomy, survey and interactions; return each title's true vibes."""
    rng = np.random.default_rng(7)
    rows, truth = [], {}
    for i in range(VIDEOS):
        category = ["cooking", "travel", "workout"][i % 3]
        vibes = {v for v in VIBES if rng.random() < (0.55 if v == LEANING[category] else 0.25)}
        if "energetic" in vibes and "calm" in vibes:
            vibes.discard("calm" if rng.random() < 0.5 else "energetic")
        phrases = [str(rng.choice(VIBES[v])) for v in sorted(vibes)] + [str(rng.choice(NEUTRAL[category]))]
        rng.shuffle(phrases)
        title = f"{category.title()} video {i:03d}"
        rows.append({"video_id": f"v{i:03d}", "title": title, "description": ". ".join(phrases).capitalize() + ".",
                     "category": category})
        truth[title] = vibes
    pd.DataFrame(rows).to_csv(root / "catalog.csv", index=False)
    taxonomy = {"name": "generated-vibes", "attributes": [
        {"name": v, "definition": f"The video feels {v}: {VIBES[v][0]}.", "aliases": [v]} for v in VIBES]}
    (root / "taxonomy.yaml").write_text(json.dumps(taxonomy))  # JSON is YAML
    survey = []
    for row in rows:
        for vibe in VIBES:
            present = vibe in truth[row["title"]]
            for rater in rng.choice(40, size=int(rng.integers(1, 4)), replace=False):
                mean = 4.3 if present else 1.8
                survey.append({"rater": f"r{rater}", "video_id": row["video_id"], "tag": vibe,
                               "rating": int(np.clip(np.rint(rng.normal(mean, 1.0)), 1, 5))})
    pd.DataFrame(survey).to_csv(root / "survey.csv", index=False)
    ratings = [{"user_id": f"u{u}", "video_id": f"v{v:03d}", "rating": float(rng.integers(1, 6)), "timestamp": 1000 + k}
               for k, (u, v) in enumerate(zip(rng.integers(0, 60, 3000), rng.integers(0, VIDEOS, 3000)))]
    pd.DataFrame(ratings).drop_duplicates(["user_id", "video_id"]).to_csv(root / "ratings.csv", index=False)
    return truth


class KnownLLM(LLMServer):
    """Answers from each title's true vibes, wrong on a known share of (video, vibe) pairs, with confidences
    that carry no extra information; scripted faults still apply."""

    def __init__(self, truth: dict[str, set[str]]) -> None:
        super().__init__(logprobs=False)  # its scores are its written confidence (the fallback path)
        self.vibes = truth  # (the base class's ``truth`` is its own per-title format)

    def respond(self, names: list[str], title: str) -> tuple[int, dict[str, str], str | None]:
        status, headers, text = super().respond(names, title)
        if status != 200 or text is None or title not in self.vibes:
            return status, headers, text
        body = {}
        for name in names:
            rng = _rng(title, name)
            label = (name in self.vibes[title]) != (rng.random() < FLIP)
            body[name] = {"label": bool(label), "confidence": round(float(rng.uniform(0.6, 0.95)), 3),
                          "evidence": f"{name} judged from the description"}
        return status, headers, json.dumps(body)


WORKSPACE = """
artifacts = "out"
taxonomy = "taxonomy.yaml"
[catalog]
path = "catalog.csv"
[catalog.columns]
tags = "category"
[judgements]
path = "survey.csv"
[interactions]
path = "ratings.csv"
[pipeline]
teacher = "llm:openai:test-model"
cf_factors = 8
[llm]
base_url = "{base_url}"
concurrency = 8
backoff_s = 0.001
flush_every = 16
"""


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("workouts")
    truth = generate(root)
    with KnownLLM(truth) as server:
        server.on_title("Travel video 001", "429:0", "ok")
        server.on_title("Cooking video 003", "500", "ok")
        (root / "vibeset.toml").write_text(WORKSPACE.format(base_url=server.base_url))
        stages = [arg for stage in ("golden", "embed", "cf", "teacher", "silver", "distill", "label", "evaluate")
                  for arg in ("--only", stage)]
        result = run_cli("run", *stages, "--json", workspace=root, VIBESET_LLM_API_KEY="sk-test-key")
        calls = server.calls
    assert result.returncode == 0, result.stderr[-2000:]
    ws = load_workspace(root)
    return {"ws": ws, "out": json.loads(result.stdout), "calls": calls,
            "metrics": read_metrics(artifacts_of(ws).get("metrics")),
            "report": artifacts_of(ws).get("student").read_json("report.json")}


def test_student_ends_within_005_auc_of_an_llm_teacher_of_known_quality(llm_run: dict) -> None:
    annotators = llm_run["metrics"]["annotators"]
    teacher, student = annotators["teacher"]["micro"]["roc_auc"], annotators["student"]["micro"]["roc_auc"]
    assert 0.72 <= teacher <= 0.92, teacher  # the server's known error rate shows in the teacher's AUC
    assert student >= teacher - 0.05, (student, teacher)
    assert llm_run["metrics"]["golden"]["split"] == "test"


def test_llm_teacher_run_is_real_and_decided_on_dev(llm_run: dict) -> None:
    report = llm_run["report"]
    assert llm_run["calls"] >= VIDEOS // 2  # the golden videos were really annotated over HTTP (faults retried)
    assert report["dev"]["accepted"] and report["dev"]["auc_loss"] <= 0.02
    assert report["student"]["lineage"]["teacher"] == "llm:openai:test-model"
    assert "annotators" not in report  # distill never looked at golden test
    calibration = artifacts_of(llm_run["ws"]).get("student").read_json("calibration.json")["attributes"]
    assert set(calibration) == set(VIBES)
    for row in calibration.values():
        assert 0.5 * row["base_rate"] - 1e-9 <= row["share_labelled"] <= 2 * row["base_rate"] + 1e-9
