import pandas as pd
import pytest

from vibeset.catalog import CatalogColumns, catalog_from_frame, load_catalog
from vibeset.errors import DataError
from vibeset.evaluation import crowd_pairs, evaluate_crowd
from vibeset.golden import agreement_report, build_golden, split_of
from vibeset.judgements import read_judgements
from vibeset.taxonomy import parse_taxonomy
from vibeset.workspace import JudgementColumns, JudgementsConfig

from conftest import DATA

TAXONOMY = parse_taxonomy(
    """\
name: t
attributes:
  - name: funny
    definition: Makes viewers laugh often.
    aliases: [funny, hilarious]
  - name: dark
    definition: Bleak and grim in tone.
    aliases: [dark]
"""
)
CONFIG = JudgementsConfig(path="survey.csv", columns=JudgementColumns(rater="userId", video="movieId"))


def survey(tmp_path, rows, header="userId,round,movieId,tag,rating"):
    path = tmp_path / "survey.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_bundled_catalog_has_9202_videos_with_overviews():
    columns = CatalogColumns(id="movieId", title="title", description="overview", tags="genres")
    catalog = load_catalog(DATA / "movies.csv", columns)
    assert len(catalog) == 9202
    assert catalog.get("1").tags[0] == "Adventure"


def test_catalog_without_mapped_text_column_is_a_clear_error(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("movieId,title\n1,A\n")
    with pytest.raises(DataError, match=r"c.csv: missing column\(s\) 'overview' \(for description\)"):
        load_catalog(path, CatalogColumns(id="movieId", description="overview"))


def test_catalog_reads_jsonl_and_parquet(tmp_path):
    frame = pd.DataFrame({"video_id": ["a", "b"], "title": ["A", "B"], "description": ["x", ""]})
    frame.to_json(tmp_path / "c.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "c.parquet")
    for name in ("c.jsonl", "c.parquet"):
        catalog = load_catalog(tmp_path / name)
        assert catalog.ids == ["a"]  # the empty description is skipped


def test_consensus_rule_not_sure_and_per_rater_aggregation(tmp_path):
    path = survey(
        tmp_path,
        [
            "1,0,10,funny,5",
            "1,0,10,hilarious,3",  # same rater, same attribute: counts once as 4
            "2,0,10,funny,3",
            "3,0,10,funny,-1",  # not sure: dropped
            "1,0,11,dark,2",
            "2,0,11,Dark,4",
            "2,0,12,unmapped tag,5",
        ],
    )
    golden = build_golden(read_judgements(path, CONFIG), TAXONOMY, CONFIG)
    pairs = golden.pairs.set_index(["video_id", "attribute"])
    assert len(pairs) == 2
    assert pairs.loc[("10", "funny"), "n_raters"] == 2
    assert pairs.loc[("10", "funny"), "mean_rating"] == pytest.approx(3.5)
    assert pairs.loc[("10", "funny"), "label"]  # 3.5 >= 3.5
    assert not pairs.loc[("11", "dark"), "label"]  # mean 3
    assert set(golden.pairs["split"]) <= {"dev", "test"}
    assert split_of("10", 0.5, 0) == split_of("10", 0.5, 0)


def test_catalog_filter_counts_skipped_videos(tmp_path):
    path = survey(tmp_path, ["1,0,10,funny,5", "1,0,99,funny,5"])
    catalog = catalog_from_frame(pd.DataFrame({"video_id": ["10"], "description": ["d"]}), CatalogColumns(title=None))
    golden = build_golden(read_judgements(path, CONFIG), TAXONOMY, CONFIG, catalog)
    assert list(golden.pairs["video_id"]) == ["10"] and golden.skipped_videos == 1


def test_split_is_by_video_and_roughly_balanced():
    splits = [split_of(str(v), 0.5, 0) for v in range(2000)]
    assert 0.45 < splits.count("test") / 2000 < 0.55


@pytest.mark.parametrize(
    "rows, header, message",
    [
        (["1,0,10,funny,7"], "userId,round,movieId,tag,rating", r"line 2: rating '7' is outside the scale 1..5"),
        (["1,0,10,funny,abc"], "userId,round,movieId,tag,rating", r"line 2: rating 'abc'"),
        (["1,0,10,5"], "userId,round,movieId,rating", r"missing column\(s\) 'tag' \(for tag\)"),
    ],
)
def test_bad_survey_is_a_clear_error(tmp_path, rows, header, message):
    with pytest.raises(DataError, match=message):
        read_judgements(survey(tmp_path, rows, header), CONFIG)


def test_crowd_baseline_matches_hand_computation(tmp_path):
    # Pair (10, funny) rated 5, 4, 2 by three raters; (11, dark) has only two raters -> excluded.
    path = survey(tmp_path, ["1,0,10,funny,5", "2,0,10,funny,4", "3,0,10,funny,2", "1,0,11,dark,5", "2,0,11,dark,5"])
    golden = build_golden(read_judgements(path, CONFIG), TAXONOMY, CONFIG)
    rows = crowd_pairs(golden).set_index("rater")
    # rater 1: says yes (5>=4); others mean (4+2)/2=3 < 3.5 -> no  => FP
    # rater 2: says yes (4>=4); others mean (5+2)/2=3.5 -> yes     => TP
    # rater 3: says no (2<4);   others mean (5+4)/2=4.5 -> yes     => FN
    assert rows.loc["1", ["y_pred", "y_true"]].tolist() == [True, False]
    assert rows.loc["2", ["y_pred", "y_true"]].tolist() == [True, True]
    assert rows.loc["3", ["y_pred", "y_true"]].tolist() == [False, True]
    micro = evaluate_crowd(golden, n_boot=50)["micro"]
    assert (micro["precision"], micro["recall"], micro["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert micro["mcc"] == pytest.approx(-0.5)  # (1*0 - 1*1) / sqrt(2*2*1*1)
    assert micro["n"] == 3


def test_agreement_report_on_bundled_survey(bundled_workspace):
    from vibeset.golden import workspace_golden
    from vibeset.workspace import load_workspace

    golden = workspace_golden(load_workspace(bundled_workspace))
    report = agreement_report(golden).set_index("attribute")
    assert len(report) == 26 and (report["pairs"] >= 50).all()
    assert report.loc["funny", "alpha"] > 0.3  # people agree on funny more than chance
    assert 0.1 < golden.summary()["prevalence"] < 0.6
