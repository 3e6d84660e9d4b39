"""Live test against a real OpenAI-compatible server (``make test-llm`` starts llama.cpp with SmolLM2).

Runs only when VIBESET_LLM_BASE_URL and VIBESET_LLM_MODEL are set; VIBESET_LLM_RESPONSE_FORMAT
(json_schema, json_object or none) picks the structured-output mode the server understands.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from vibeset.annotation import read_annotations
from vibeset.llm import LLMConfig, read_failures, run
from vibeset.workspace import load_workspace

from conftest import REPO

BASE_URL = os.environ.get("VIBESET_LLM_BASE_URL")
MODEL = os.environ.get("VIBESET_LLM_MODEL")

pytestmark = [
    pytest.mark.llm,
    pytest.mark.skipif(
        not (BASE_URL and MODEL),
        reason="live LLM test: set VIBESET_LLM_BASE_URL and VIBESET_LLM_MODEL (or run 'make test-llm')",
    ),
]


def test_live_server_annotates_or_records_every_video(tmp_path) -> None:
    ws = load_workspace(REPO)
    videos = list(ws.catalog)[:2]
    config = LLMConfig(
        concurrency=1, max_retries=1, timeout_s=600, backoff_s=1.0,
        response_format=os.environ.get("VIBESET_LLM_RESPONSE_FORMAT", "json_schema"),
    )
    backend = config.backend("openai", MODEL, BASE_URL)
    summary = asyncio.run(run(videos, ws.taxonomy, backend, config, tmp_path))
    print(f"\nlive: {summary.annotated} annotated, {summary.failed} failed, {summary.calls} calls, "
          f"{summary.input_tokens} in / {summary.output_tokens} out tokens, {summary.elapsed_s:.1f} s")
    assert summary.annotated + summary.failed == len(videos) and summary.calls >= len(videos)
    assert summary.input_tokens > 0
    if summary.annotated:
        labels = read_annotations(tmp_path)
        assert set(labels["attribute"]) == set(ws.taxonomy.names)
    if summary.failed:
        assert read_failures(tmp_path)["raw"].str.len().gt(0).any() or read_failures(tmp_path)["kind"].ne("").all()
