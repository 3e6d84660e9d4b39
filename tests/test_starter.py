"""The first hour: `vibeset init` writes a starter workspace (not movies) that `vibeset run` runs end to end."""

from __future__ import annotations

import json
import re

import pandas as pd

from conftest import run_cli


def test_init_writes_every_starter_file_commented(tmp_path):
    result = run_cli("init", "--workspace", str(tmp_path / "mine"), "--json")
    assert result.returncode == 0, result.stderr
    files = {p.rsplit("/", 1)[1] for p in json.loads(result.stdout)["files"]}
    assert files == {"vibeset.toml", "taxonomy.yaml", "catalog.csv", "judgements.csv", "interactions.csv"}
    config = (tmp_path / "mine" / "vibeset.toml").read_text()
    for section in ("[catalog.columns]", "[judgements.columns]", "[interactions.columns]", "[pipeline]", 'domain = "videos"'):
        assert section in config
    taxonomy = (tmp_path / "mine" / "taxonomy.yaml").read_text()
    for field in ("name", "definition", "includes", "excludes", "examples", "aliases"):
        assert re.search(rf"^#\s+{field}\s", taxonomy, re.M), f"{field} is not documented"  # a comment per field
        assert re.search(rf"^\s+-?\s*{field}:", taxonomy, re.M), f"{field} is not used"
    again = run_cli("init", str(tmp_path / "mine"), "--json")
    assert again.returncode == 2 and "already exist" in json.loads(again.stdout)["error"]  # never overwrites silently


def test_starter_runs_end_to_end_and_ends_with_the_verdict(starter_workspace):
    config, result = starter_workspace
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(out) + len(result.stderr.strip().splitlines()) <= 48  # two screens
    verdict = out[out.index("verdict:"):]
    assert any("a single human rater" in line and "[" in line for line in verdict)  # with CIs
    assert any(line.startswith("  share of the catalog labelled per vibe / its estimated base rate") for line in verdict)
    for stage in ("golden", "embed", "cf", "teacher", "silver", "distill", "label", "index", "evaluate",
                  "eval-retrieval", "report"):
        assert any(re.match(rf"\s+{stage}\s+ran in", line) for line in out), stage
    assert "warning" not in result.stdout  # the starter is sized for every stage
    text = (result.stdout + result.stderr).lower()
    report = (config.parent / "out" / "report" / "report.html").read_text(encoding="utf-8").lower()
    assert "film" not in text and "movie" not in text and "film" not in report and "movie" not in report


def test_starter_serves_domain_worded_recommendations_and_reruns_nothing(starter_workspace):
    config, _ = starter_workspace
    users = pd.read_csv(config.parent / "interactions.csv", dtype=str)["user_id"]
    answer = run_cli("recommend", "--user", users.iloc[0], "--top-k", "3", "--json", workspace=config)
    assert answer.returncode == 0, answer.stderr
    got = json.loads(answer.stdout)
    assert len(got["items"]) == 3
    explanation = got["intent"].get("explanation") or ""
    assert "film" not in explanation and (not got["intent"]["matched"] or explanation.endswith("videos for you"))
    again = run_cli("run", workspace=config)
    assert again.returncode == 0, again.stderr
    assert "nothing to do: every stage is up to date" in again.stdout


def test_readme_results_come_from_the_artifacts(starter_workspace):
    config, run = starter_workspace
    result = run_cli("report", "--markdown", workspace=config)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    metrics = json.loads((config.parent / "out" / "metrics" / "metrics.json").read_text())
    student = metrics["annotators"]["student"]["head_to_head"]["micro"]
    assert f"| student | head-to-head with the crowd | {student['n']:,} | {student['f1']:.3f} | {student['mcc']:.3f} [" in text
    verdict = [line.strip() for line in run.stdout.splitlines()[run.stdout.splitlines().index("verdict:") + 1:]]
    assert [line[2:] for line in text.splitlines() if line.startswith("- ")] == verdict  # the same verdict as the run
    assert text.startswith("<!-- results:") and text.rstrip().endswith("<!-- /results -->")
