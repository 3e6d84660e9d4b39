"""The foundation's CLI contract, on the real bundled data and on small hand-made files."""

import json

import pytest

from conftest import DATA, run_cli, write_workspace


def test_evaluate_json_contract_on_bundled_survey(bundled_workspace):
    result = run_cli(
        "evaluate", "--survey", str(DATA / "survey.csv"), "--annotator", "crowd", "--annotator", "zero-shot",
        "--split", "all", "--json", "--bootstrap", "100", workspace=bundled_workspace,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    golden = report["golden"]
    assert golden["attributes"] == 26 and golden["pairs"] > 4000 and 0.2 < golden["prevalence"] < 0.5
    for name in ("crowd", "zero-shot"):
        block = report["annotators"][name]
        for level in ("micro", "macro"):
            assert {"precision", "recall", "f1", "mcc", "n"} <= set(block[level])
        assert len(block["per_attribute"]) >= 20
        assert "micro" in block["head_to_head"]
    zero_shot = report["annotators"]["zero-shot"]
    assert 0.55 < zero_shot["micro"]["roc_auc"] < 0.9  # better than chance, honest baseline
    assert zero_shot["micro"]["n"] == golden["pairs"]
    assert report["annotators"]["crowd"]["micro"]["n"] == golden["crowd_pairs"]


def test_evaluate_on_another_survey_learns_nothing_from_it(bundled_workspace, shared_artifacts, tmp_path):
    survey = tmp_path / "mine.csv"
    rows = ["userId,round,movieId,tag,rating"] + [f"{u},0,{m},funny,{r}" for u, m, r in
            [(1, 1, 5), (2, 1, 4), (3, 1, 2), (1, 2, 1), (2, 2, 2), (3, 2, 1), (1, 999999, 5)]]
    survey.write_text("\n".join(rows) + "\n")
    result = run_cli("evaluate", "--survey", str(survey), "-a", "crowd", "-a", "zero-shot", "--json",
                     "--bootstrap", "50", workspace=bundled_workspace)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["golden"]["pairs"] == 2 and report["golden"]["skipped_videos"] == 1
    assert report["annotators"]["crowd"]["micro"]["n"] == 6
    # thresholds come from the bundled dev split: nothing in the report was learned from this survey
    own = json.loads(run_cli("golden", "--json", workspace=bundled_workspace).stdout)["golden"]["version"]
    assert report["golden"]["version"] != own and report["golden"]["test_split_uses"] is None


@pytest.mark.parametrize(
    "override, content, message",
    [
        ("taxonomy", "name: t\nattributes:\n  - name: a\n    definition: long enough text\n    bogus: 1\n", "taxonomy.yaml:5"),
        ("judgements", "userId,movieId,rating\n1,1,5\n", "missing column(s) 'tag'"),
        ("judgements", "userId,round,movieId,tag,rating\n1,0,1,funny,9\n", "rating '9' is outside the scale"),
        ("catalog", "movieId,title,genres\n1,A,Comedy\n", "missing column(s) 'overview' (for description)"),
    ],
)
def test_bad_inputs_exit_nonzero_with_one_line_error(tmp_path, override, content, message):
    name = {"taxonomy": "taxonomy.yaml", "judgements": "survey.csv", "catalog": "movies.csv"}[override]
    (tmp_path / name).write_text(content)
    ws = write_workspace(tmp_path / "ws", tmp_path / "art", **{override: tmp_path / name})
    result = run_cli("evaluate", "-a", "crowd", "--json", workspace=ws)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") <= 2


def test_init_writes_a_loadable_commented_config(tmp_path):
    result = run_cli("init", str(tmp_path))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "vibeset.toml").read_text()
    assert "[catalog.columns]" in text and "# " in text
    assert run_cli("init", str(tmp_path)).returncode == 2  # never overwrites silently


def test_zero_shot_annotate_rerun_replaces_its_labels(bundled_workspace, tmp_path):
    import pandas as pd

    from vibeset.annotation import read_annotations

    videos = tmp_path / "videos.csv"
    pd.read_csv(DATA / "movies.csv", dtype=str).dropna(subset=["overview"]).head(12).to_csv(videos, index=False)
    out = tmp_path / "zs"
    for _ in range(2):
        result = run_cli("annotate", "--backend", "zero-shot", "--videos", str(videos), "--out", str(out),
                         workspace=bundled_workspace)
        assert result.returncode == 0, result.stderr
    labels = read_annotations(out)
    assert len(labels) == 12 * 26 and not labels.duplicated(["video_id", "attribute"]).any()
    assert set(labels["source"]) == {"zero-shot"} and labels["score"].between(0, 1).all()
    assert (labels["label"] == (labels["score"] >= 0.5)).all()
