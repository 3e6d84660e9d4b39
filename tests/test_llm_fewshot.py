"""Few-shot examples chosen per video from golden dev: near in the text embedding, diverse in labels,
never from the test split or the video itself, part of the prompt version; k compared on dev."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vibeset.errors import ConfigError
from vibeset.golden import workspace_golden
from vibeset.llm import LLMConfig, workspace_prompt
from vibeset.llm.fewshot import FewShot, workspace_few_shot
from vibeset.llm.prompt import FENCE_OPEN
from vibeset.workspace import load_workspace

from conftest import run_cli
from llm_server import LLMServer


@pytest.fixture(scope="module")
def ws(bundled_workspace):
    return load_workspace(bundled_workspace)


@pytest.fixture(scope="module")
def splits(ws):
    golden = workspace_golden(ws)
    return set(golden.split("dev").pairs["video_id"]), set(golden.split("test").pairs["video_id"])


@pytest.fixture(scope="module")
def shots(ws):
    return workspace_few_shot(ws, 8)


def test_examples_come_from_golden_dev_only_never_the_video_itself(ws, splits, shots) -> None:
    dev, test = splits
    targets = [*ws.catalog.subset(sorted(test)[:40]), *ws.catalog.subset(sorted(dev)[:40])]
    shots.prepare(targets)
    for video in targets:
        chosen = [example.video.video_id for example in shots.examples(video)]
        assert len(chosen) == 8 == len(set(chosen))
        assert set(chosen) <= dev and not set(chosen) & test, video.video_id
        assert video.video_id not in chosen
        for example in shots.examples(video):  # the labels shown are the golden dev consensus
            assert example.labels and set(example.labels) <= set(ws.taxonomy.names)
    with pytest.raises(ConfigError, match="held-out"):
        golden = workspace_golden(ws)
        FewShot(3, golden.split("dev"), {v.video_id: v for v in ws.catalog.subset(sorted(dev))}, shots.embed,
                encoder="x", held_out={sorted(dev)[0]})


def test_examples_are_near_and_label_diverse(ws, splits, shots) -> None:
    dev, test = splits
    targets = list(ws.catalog.subset(sorted(test)[:60]))
    vectors = shots.embed([video.text() for video in targets])
    chosen_similarity, coverage, nearest_coverage = [], [], []
    for video, vector in zip(targets, vectors):
        similarity = shots._pool @ vector
        picked = [shots.ids.index(example.video.video_id) for example in shots.examples(video)]
        nearest = list(np.argsort(-similarity, kind="stable")[:8])
        chosen_similarity.append(similarity[picked].mean() - similarity.mean())
        coverage.append(len({pair for i in picked for pair in shots.labels[i].items()}))
        nearest_coverage.append(len({pair for i in nearest for pair in shots.labels[i].items()}))
    assert np.mean(chosen_similarity) > 0.1  # far nearer than a random dev video
    assert np.mean(coverage) > np.mean(nearest_coverage)  # more (attribute, label) values than the 8 nearest


def test_k_is_part_of_the_prompt_version_and_examples_precede_the_video(ws, splits) -> None:
    versions = {}
    video = next(iter(ws.catalog.subset(sorted(splits[1])[:1])))
    for k in (0, 3, 8):
        prompt = workspace_prompt(ws, ws.taxonomy, LLMConfig(shots=k))
        versions[k] = prompt.version
        user = prompt.render(video).user
        assert user.count(FENCE_OPEN) == k + 1 and user.count("Labels: ") == k
        assert not k or user.rindex(FENCE_OPEN) > user.rindex("Labels: ")  # the video comes last
    assert len(set(versions.values())) == 3


def test_cli_annotates_with_k_shots_and_iterate_compare_compares_k_on_dev(bundled_workspace: Path, tmp_path: Path) -> None:
    outs = {}
    with LLMServer() as server:
        for k in (0, 3):
            out = tmp_path / f"k{k}"
            result = run_cli("annotate", "--backend", "openai", "--model", "m", "--base-url", server.base_url,
                             "--split", "golden-dev", "--limit", "30", "--shots", str(k), "--out", str(out), "--json",
                             workspace=bundled_workspace)
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["annotated"] == 30
            outs[k] = out
            user = server.requests[-1]["messages"][1]["content"]
            assert user.count(FENCE_OPEN) == k + 1
    compared = run_cli("iterate", "compare", f"annotations:{outs[0]}", f"annotations:{outs[3]}", "--bootstrap", "50",
                       "--json", workspace=bundled_workspace)
    assert compared.returncode == 0, compared.stderr
    result = json.loads(compared.stdout)
    assert (result["a"]["shots"], result["b"]["shots"]) == (0, 3) and result["golden"]["split"] == "dev"
    assert result["a"]["version"] != result["b"]["version"] and result["coverage"]["pairs"] > 0
