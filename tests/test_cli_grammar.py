"""One CLI grammar, and no traceback anywhere: every verb (as `vibeset --help` lists them) with bad
arguments, a broken workspace and corrupt artifacts ends in one clear line and exit 2 (or works),
and under --json prints exactly one JSON object on stdout, errors included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_fork import ForkRunner
from conftest import run_cli

#: every verb with the arguments that make it runnable (the workspace comes from $VIBESET_WORKSPACE)
VERBS: dict[str, list[str]] = {
    "init": [],
    "golden": [],
    "evaluate": ["--bootstrap", "10"],
    "serve": ["--port", "1"],
    "eval-retrieval": ["--bootstrap", "10"],
    "recommend": ["--user", "user01"],
    "annotate": ["--backend", "zero-shot", "--split", "dev"],
    "report": ["--bootstrap", "10"],
    "silver": [],
    "distill": ["--bootstrap", "10"],
    "label": [],
    "run": [],
    "embed": [],
    "cf": [],
    "ranker": ["--epochs", "1"],
    "bench retrieval": ["--items", "2000", "--queries", "2", "--attributes", "3"],
    "bench label": ["--rows", "100", "--texts", "8", "--no-ray"],
    "index build": [],
    "runs list": [],
    "runs show": ["zzzz"],
    "runs compare": ["zzzz", "yyyy"],
    "iterate evaluate": ["--bootstrap", "10"],
    "iterate compare": ["zero-shot", "zero-shot", "--bootstrap", "10"],
    "iterate refine": [],
    "iterate promote": ["nope"],
}
#: verbs that would do real work (serve forever, benchmark) on a valid workspace: only bad-argument cases
NOT_ON_A_WORKSPACE = {"init", "serve", "bench retrieval", "bench label"}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory):
    runner = ForkRunner(tmp_path_factory.mktemp("cwd"))
    yield runner
    runner.close()


def _verbs_in_help() -> set[str]:
    import typer.main

    from vibeset.cli import app

    def walk(command, prefix: str) -> set[str]:
        children = getattr(command, "commands", None)
        if not children:
            return {prefix}
        return set().union(*(walk(child, f"{prefix} {name}".strip()) for name, child in children.items()))

    return walk(typer.main.get_command(app), "")


def test_the_table_covers_every_verb():
    assert set(VERBS) == _verbs_in_help()


def _check(result: dict, *, as_json: bool, codes: tuple[int, ...] = (2,), where: str = "") -> dict | None:
    assert not result["timed_out"], where
    assert "Traceback" not in result["stderr"] and "internal error" not in result["stderr"], (where, result["stderr"][-2000:])
    assert result["rc"] in codes, (where, result["rc"], result["stderr"][-1000:])
    errors = [line for line in result["stderr"].splitlines() if line.startswith("error: ")]
    if result["rc"] != 0:
        assert len(errors) == 1, (where, result["stderr"][-1000:])
    if as_json:
        value = json.loads(result["stdout"])  # one object and nothing else on stdout
        if result["rc"] != 0:
            assert value["error"] == errors[0][len("error: "):] and value["exit_code"] == result["rc"], where
        return value
    return None


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_bad_arguments_end_in_one_line(cli, verb, tmp_path):
    words = verb.split()
    for bad, as_json in ((["--no-such-option"], False), (["--no-such-option"], True), (["--bootstrap", "many"], True),
                         (["--top-k", "0"], True), (["--split", "sideways"], True)):
        result = cli(*words, *VERBS[verb], *bad, *(["--json"] if as_json else []), workspace=tmp_path / "nowhere")
        _check(result, as_json=as_json, where=f"{verb} {bad}")
        if not as_json and bad == ["--no-such-option"]:
            assert "Usage: vibeset" in result["stderr"]
    assert cli(*words, "--help")["rc"] == 0
    if "--workspace" not in cli(*words, "--help")["stdout"]:
        assert verb.startswith("bench retrieval"), f"{verb} has no --workspace"


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, starter_workspace) -> dict[str, Path]:
    """Workspaces that are wrong in one way each (copies of the starter's config and files)."""
    source = starter_workspace[0].parent
    root = tmp_path_factory.mktemp("broken")

    def make(name: str, edit) -> Path:
        directory = root / name
        directory.mkdir()
        for file in ("vibeset.toml", "taxonomy.yaml", "catalog.csv", "judgements.csv", "interactions.csv"):
            shutil.copy(source / file, directory / file)
        (directory / "out").mkdir()
        (directory / "out" / "embeddings").symlink_to(source / "out" / "embeddings", target_is_directory=True)
        edit(directory)
        return directory

    def text(file: str, old: str, new: str):
        def edit(directory: Path) -> None:
            path = directory / file
            content = path.read_text()
            assert old in content, (file, old)
            path.write_text(content.replace(old, new, 1))
        return edit

    def write(file: str, content: bytes):
        return lambda directory: (directory / file).write_bytes(content)

    return {
        "missing": root / "does-not-exist",
        "not toml": make("not-toml", write("vibeset.toml", b"[catalog\npath = ")),
        "unknown key": make("unknown-key", text("vibeset.toml", 'domain = "videos"', 'domain = "videos"\ncolour = "red"')),
        "empty column": make("empty-column", text("vibeset.toml", 'rating = "rating"', 'rating = ""')),
        "binary taxonomy": make("binary-taxonomy", write("taxonomy.yaml", bytes(range(256)) * 4)),
        "bracket name": make("bracket-name", text("taxonomy.yaml", "name: calming", "name: '[/x] calm'")),
        "header-only survey": make("header-only", write("judgements.csv", b"rater,video_id,tag,rating\n")),
        "bad rating": make("bad-rating", write("judgements.csv", b"rater,video_id,tag,rating\nalice,v001,funny,lots\n")),
        "no catalog": make("no-catalog", lambda d: (d / "catalog.csv").unlink()),
        "duplicate ids": make("duplicate-ids", text("catalog.csv", "\nv002,", "\nv001,")),
        "bad timestamp": make("bad-timestamp", text("interactions.csv", "\nuser01,", "\nuser01,v001,4,yesterday\nuser01,")),
    }


@pytest.mark.parametrize("verb", sorted(set(VERBS) - NOT_ON_A_WORKSPACE))
def test_broken_workspaces_end_in_one_line(cli, broken, verb):
    problems = []
    for name, directory in broken.items():
        result = cli(*verb.split(), *VERBS[verb], "--json", workspace=directory, timeout=180)
        try:
            _check(result, as_json=True, codes=(2,) if name == "missing" else (0, 2), where=f"{verb} on a workspace with {name}")
        except (AssertionError, ValueError) as err:
            problems.append(str(err)[:400])
    assert not problems, "\n".join(problems)


def test_messages_keep_brackets_and_name_the_problem(cli, broken):
    bracket = cli("golden", workspace=broken["bracket name"])
    _check(bracket, as_json=False, where="bracket name")
    assert "'[/x] calm'" in bracket["stderr"] and "^[a-z0-9][a-z0-9_-]*$" in bracket["stderr"]
    binary = cli("golden", workspace=broken["binary taxonomy"])
    assert "taxonomy.yaml" in binary["stderr"] and binary["rc"] == 2
    empty = cli("golden", "--json", workspace=broken["header-only survey"])
    assert "empty" in json.loads(empty["stdout"])["error"]
    column = cli("golden", "--json", workspace=broken["empty column"])
    assert "judgements.columns.rating" in json.loads(column["stdout"])["error"]


def test_usage_errors_say_what_is_wrong(cli, starter_workspace):
    config = starter_workspace[0]
    claude = cli("annotate", "--backend", "claude", "--split", "dev", "--json", workspace=config)
    assert "--backend must be zero-shot, openai or gemini" in json.loads(claude["stdout"])["error"]
    missing = cli("label", "--model", "/missing/student", "--out", str(config.parent / "tmp-labels"), "--json", workspace=config)
    _check(missing, as_json=True, where="label --model /missing")
    assert "/missing/student" in json.loads(missing["stdout"])["error"]
    dry = cli("annotate", "--backend", "openai", "--model", "some-model", "--split", "dev", "--dry-run", workspace=config)
    _check(dry, as_json=False, codes=(0,), where="dry run")
    assert "[llm.prices]" in dry["stderr"] + dry["stdout"]
    ab = cli("eval-retrieval", "--ab", "v9,v8", "--json", workspace=config)
    assert "no index version 'v9'" in json.loads(ab["stdout"])["error"]
    epochs = cli("ranker", "--epochs", "-1", "--json", workspace=config)
    _check(epochs, as_json=True, where="ranker --epochs -1")
    assert "'--epochs'" in json.loads(epochs["stdout"])["error"]
    blend = cli("recommend", "--user", "u1", "--blend", "-1", "--json", workspace=config)
    _check(blend, as_json=True, where="recommend --blend -1")
    assert "'--blend'" in json.loads(blend["stdout"])["error"]  # the bounds the HTTP API has


def test_index_versions_are_taken_by_prefix(cli, starter_workspace, tmp_path):
    work = tmp_path / "ws"
    shutil.copytree(starter_workspace[0].parent, work, symlinks=True)
    version = (work / "out" / "index" / "CURRENT").read_text().strip()
    result = cli("eval-retrieval", "--ab", f"{version[:6]},{version[:6]}", "--bootstrap", "5", "--top-k", "5", "--json",
                 workspace=work)
    value = _check(result, as_json=True, codes=(0,), where="--ab by prefix")
    assert value["ab"]["a"] == value["ab"]["b"] == version and all(
        "recall@5" in metrics for split in value["splits"].values() for block in split["protocols"].values()
        for metrics in block["systems"].values())


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else bytes((b * 7 + 3) % 256 for b in data[:4096]))


#: (files under the artifacts dir, verbs that read them)
ARTIFACT_READERS = [
    ("metrics/metrics.json", ["report", "run --only report"]),
    ("models/student/*.onnx", ["label", "run --only label"]),
    ("models/student/student.json", ["label", "report"]),
    ("index/versions/*/item_factors.npy", ["recommend --user user01", "eval-retrieval --bootstrap 10", "serve --port 1"]),
    ("index/CURRENT", ["recommend --user user01", "serve --port 1"]),
    ("runs.sqlite", ["runs list", "report", "iterate evaluate --bootstrap 10"]),
    ("shards/*.parquet", ["label", "cf", "distill --bootstrap 10"]),
    ("annotations/student/*.parquet", ["index build", "evaluate -a annotations:{out}/annotations/student --bootstrap 10"]),
    ("annotations/evidence/*.parquet", ["silver", "iterate evaluate -a annotations:{out}/annotations/evidence"]),
    ("golden/artifact.json", ["silver", "golden"]),
    ("models/cf/*", ["index build", "recommend --user user01"]),
    ("retrieval/*.json", ["report"]),
]


@pytest.mark.parametrize("pattern, verbs", ARTIFACT_READERS, ids=[p for p, _ in ARTIFACT_READERS])
@pytest.mark.parametrize("how", ["truncate", "garble"])
def test_corrupt_artifacts_end_in_one_line_naming_the_file(cli, starter_workspace, tmp_path, pattern, verbs, how):
    source = starter_workspace[0].parent
    work = tmp_path / "ws"
    shutil.copytree(source, work, symlinks=True)
    out = work / "out"
    files = [p for p in out.glob(pattern) if p.is_file()]
    assert files, pattern
    for file in files:
        _corrupt(file, how)
    for verb in verbs:
        args = verb.format(out=out).split()
        result = cli(*args, "--json", workspace=work, timeout=300)
        value = _check(result, as_json=True, codes=(0, 2), where=f"{verb} with {how}d {pattern}")
        if result["rc"] == 2:
            assert str(out) in value["error"] or "out/" in value["error"], (verb, value["error"])


def test_json_stdout_is_only_json_even_when_libraries_print(starter_workspace, tmp_path):
    """Whatever writes to file descriptor 1 while a verb runs (a library, a Ray worker) lands on stderr."""
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    (noisy / "sitecustomize.py").write_text(
        "import atexit, os\natexit.register(lambda: os.write(1, b'raylet: a warning on fd 1\\n'))\n")
    result = run_cli("runs", "list", "--json", workspace=starter_workspace[0], PYTHONPATH=str(noisy))
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list) and "raylet: a warning" in result.stderr
