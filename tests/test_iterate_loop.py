"""The iteration loop on the bundled data: guard, registry, offline refinement, promotion, and the
LLM meta-prompt path against the local OpenAI-protocol test server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DATA, run_cli, write_workspace
from llm_server import LLMServer
from vibeset.annotate.teacher import zero_shot_teacher
from vibeset.annotators import parse_spec, zero_shot_for
from vibeset.errors import ConfigError
from vibeset.iterate.promote import promote
from vibeset.iterate.refine import PROPOSAL_SCHEMA, decide, propose, refine_llm_auto, refine_offline
from vibeset.llm.config import LLMConfig, Price
from vibeset.runs import (Lineage, champion, compare_runs, get_run, golden_split, list_runs, record_run, taxonomy_in_use,
                          uses_of_test_split)
from vibeset.workspace import load_workspace


def zero_shot(ws):
    return zero_shot_for(ws, parse_spec("zero-shot"), golden_split(ws, "dev"))[0]

PROPOSAL = {
    "definition": "The film leaves a lasting sorrow: loss or grief is the heart of the story, not a passing moment.",
    "includes": ["grief that drives the story", "tragic endings"],
    "excludes": ["brief sad scenes in a comedy"],
    "rationale": "false positives were violent films without grief",
}


class RefineServer(LLMServer):
    """The LLM engineer's test server, answering the meta-prompt (recognised by its schema) with a proposal."""

    def respond(self, names, title):
        if set(names) == set(PROPOSAL_SCHEMA["properties"]):
            self._behaviour(title)
            return 200, {}, "Here is my proposal:\n```json\n" + json.dumps(PROPOSAL) + "\n```"
        return super().respond(names, title)


@pytest.fixture(scope="module")
def ws(tmp_path_factory, shared_artifacts):
    """A workspace with its own registry; the MiniLM embedding cache is shared with the session."""
    root = tmp_path_factory.mktemp("iterate")
    (shared_artifacts / "embeddings").mkdir(parents=True, exist_ok=True)
    (root / "out").mkdir()
    (root / "out" / "embeddings").symlink_to(shared_artifacts / "embeddings", target_is_directory=True)
    return load_workspace(write_workspace(root, root / "out"))


def test_registry_round_trip(ws):
    run = record_run(ws, "annotate", lineage=Lineage("t1", "p1", "m", "g", "dev"), config={"n": 1},
                     metrics={"macro": {"f1": 0.5}}, cost_usd=0.25, duration_s=2.0)
    other = record_run(ws, "annotate", lineage=Lineage("t2", "p1", "m", "g", "dev"), metrics={"macro": {"f1": 0.75}})
    assert get_run(ws, run.run_id[:5]).config == {"n": 1}
    assert [r.run_id for r in list_runs(ws, kind="annotate")][:2] == [other.run_id, run.run_id]
    diff = compare_runs(ws, run.run_id, other.run_id)
    assert diff["lineage"] == {"taxonomy_version": ["t1", "t2"]}
    assert diff["metrics"]["macro"]["f1"]["delta"] == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="no run"):
        get_run(ws, "zzzz")


def test_test_split_is_guarded_and_counted(ws):
    golden = golden_split(ws, "dev")
    before = uses_of_test_split(ws)
    with pytest.raises(ConfigError, match="--final"):
        golden_split(ws, "test")
    assert uses_of_test_split(ws) == before
    test = golden_split(ws, "test", final=True, purpose="unit test")
    assert set(test.pairs["split"]) == {"test"} and not set(test.pairs["video_id"]) & set(golden.pairs["video_id"])
    assert uses_of_test_split(ws) == before + 1


def test_cli_final_evaluation_is_recorded(ws):
    workspace = ws.root / "vibeset.toml"
    before = uses_of_test_split(ws)
    dev = run_cli("iterate", "evaluate", "--json", "--bootstrap", "50", workspace=workspace)
    assert dev.returncode == 0, dev.stderr
    report = json.loads(dev.stdout)
    assert report["header"]["split"] == "dev" and Path(report["report"]["markdown"]).exists()
    assert uses_of_test_split(ws) == before
    typo = run_cli("iterate", "evaluate", "--final", "-a", "zero-shot@nosuchversion", workspace=workspace)
    assert typo.returncode == 2 and "no taxonomy or zero-shot version" in typo.stderr
    assert uses_of_test_split(ws) == before  # a typo does not spend the test split
    final = run_cli("iterate", "evaluate", "--final", "--json", "--bootstrap", "50", workspace=workspace)
    assert final.returncode == 0, final.stderr
    header = json.loads(final.stdout)["header"]
    assert header["split"] == "test" and header["test_uses"] == before + 1
    runs = json.loads(run_cli("runs", "list", "--json", workspace=workspace).stdout)
    assert runs[0]["lineage"]["golden_split"] == "test" and runs[0]["config"]["final"] is True


def test_offline_round_improves_dev_f1_and_promotes(ws):
    dev = golden_split(ws, "dev")
    base = zero_shot(ws)
    result = refine_offline(ws, base, ws.taxonomy, dev, max_rounds=1)
    assert result["rounds"][0]["improved"]
    assert result["best_dev_macro_f1"] > result["base_dev_macro_f1"]
    best = result["best_version"]
    assert get_run(ws, result["rounds"][0]["run_id"]).lineage.prompt_version == best
    chosen = promote(ws, best[:8])
    assert champion(ws).version == best and chosen.kind == "zero-shot"
    assert zero_shot_teacher(ws, taxonomy_in_use(ws), dev).version == best  # bulk zero-shot now uses the champion
    with pytest.raises(ConfigError, match="no taxonomy or zero-shot version"):
        promote(ws, "ffffffffffff")


def test_meta_prompt_proposal_accept_writes_new_taxonomy(ws):
    dev = golden_split(ws, "dev")
    annotations = zero_shot(ws).annotate(list(ws.catalog.subset(sorted(dev.pairs["video_id"].unique()))), ws.taxonomy)
    config = LLMConfig(max_retries=1, backoff_s=0, prices={"refiner": Price(input=1.0, output=2.0)})
    original = (DATA / "taxonomy.yaml").read_text()
    with RefineServer() as server:
        record = propose(ws, "sad", ws.taxonomy, annotations, dev, config.backend("openai", "refiner", server.base_url),
                         config, annotator="zero-shot", per_side=3)
        request = server.requests[-1]
    system, user = (m["content"] for m in request["messages"])
    assert "Current definition: " + ws.taxonomy["sad"].definition in system
    assert user.count("<video_data>") == sum(min(3, record["confusion"][k]) for k in ("fp", "fn"))
    assert request["response_format"]["json_schema"]["schema"] == PROPOSAL_SCHEMA
    assert record["proposed"]["definition"] == PROPOSAL["definition"] and record["cost_usd"] > 0
    accepted = decide(ws, "sad", "accept")
    path = Path(accepted["taxonomy_path"])
    assert path.parent.parent == ws.artifacts / "taxonomies" and path.parent.name == accepted["taxonomy_version"]
    assert "lasting sorrow" in path.read_text() and (DATA / "taxonomy.yaml").read_text() == original
    with pytest.raises(ConfigError, match="no pending proposal"):
        decide(ws, "sad", "accept")
    # the edited definition, measured offline: zero-shot fitted on dev under the new taxonomy
    result = run_cli("iterate", "compare", "zero-shot", f"zero-shot@{accepted['taxonomy_version']}", "--json",
                     "--bootstrap", "100", workspace=ws.root / "vibeset.toml")
    assert result.returncode == 0, result.stderr
    compared = json.loads(result.stdout)
    assert compared["b"]["taxonomy_version"] == accepted["taxonomy_version"] and compared["golden"]["split"] == "dev"


def test_llm_auto_mode_respects_the_budget(ws):
    dev = golden_split(ws, "dev")
    config = LLMConfig(max_retries=1, backoff_s=0, concurrency=8, prices={"refiner": Price(input=1.0, output=2.0)})
    with RefineServer() as server:
        make = lambda: config.backend("openai", "refiner", server.base_url)  # noqa: E731
        broke = refine_llm_auto(ws, "cute", ws.taxonomy, dev, make, config, max_rounds=3, max_cost=1e-9)
        assert broke["stopped"] == "max_cost" and broke["rounds"] == [] and broke["cost_usd"] > 0
        result = refine_llm_auto(ws, "cute", ws.taxonomy, dev, make, config, max_rounds=2, max_cost=10.0)
    assert 1 <= len(result["rounds"]) <= 2
    assert result["stopped"] in ("no_improvement", "max_rounds")
    if result["stopped"] == "no_improvement":
        assert not result["rounds"][-1]["improved"]
    assert (ws.artifacts / "taxonomies" / result['rounds'][0]['version'] / "taxonomy.yaml").exists()
    with pytest.raises(ConfigError, match="price"):
        refine_llm_auto(ws, "cute", ws.taxonomy, dev, make, LLMConfig(), max_cost=1.0)
