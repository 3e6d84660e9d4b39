"""Shared fixtures: the bundled real data as a workspace whose artifacts live in a temp dir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "movielens-vibes"
VIBESET = [sys.executable, "-m", "vibeset"]


def write_workspace(root: Path, artifacts: Path, **overrides: str) -> Path:
    """A vibeset.toml over the bundled data (absolute paths); ``overrides`` replace file paths."""
    paths = {
        "taxonomy": DATA / "taxonomy.yaml",
        "catalog": DATA / "movies.csv",
        "judgements": DATA / "survey.csv",
        "interactions": DATA / "ratings.csv",
        **overrides,
    }
    # the repo's [llm] table (and its comment) is left out: tests bring their own
    text = re.split(r"\n(?:#[^\n]*\n)*\[llm\]", (REPO / "vibeset.toml").read_text())[0] + "\n"
    text = text.replace('artifacts = "out"', f'artifacts = "{artifacts}"')
    for key, default in (
        ("taxonomy", "data/movielens-vibes/taxonomy.yaml"),
        ("catalog", "data/movielens-vibes/movies.csv"),
        ("judgements", "data/movielens-vibes/survey.csv"),
        ("interactions", "data/movielens-vibes/ratings.csv"),
    ):
        text = text.replace(f'"{default}"', f'"{paths[key]}"')
    text = text.replace('"data/movielens-vibes/', f'"{DATA}/')  # the [[tag_sources]] tables
    root.mkdir(parents=True, exist_ok=True)
    (root / "vibeset.toml").write_text(text)
    return root / "vibeset.toml"


@pytest.fixture(scope="session")
def shared_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifacts dir per test session, so the MiniLM embedding cache is filled once."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def bundled_workspace(tmp_path_factory: pytest.TempPathFactory, shared_artifacts: Path) -> Path:
    """Path of a vibeset.toml over the bundled data; artifacts shared across the session."""
    return write_workspace(tmp_path_factory.mktemp("ws"), shared_artifacts)


def run_cli(*args: str, workspace: Path | None = None, check: bool = False, timeout: float = 600, **env: str):
    """Run the real ``vibeset`` CLI in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **env}
    if workspace is not None:
        full_env["VIBESET_WORKSPACE"] = str(workspace)
    return subprocess.run(
        [*VIBESET, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=check, cwd=REPO
    )
