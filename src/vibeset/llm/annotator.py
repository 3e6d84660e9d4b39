"""``LLMAnnotator``: the run engine behind the ``Annotator`` protocol, so LLM labels are one more annotations table."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..annotation import COLUMNS, read_annotations
from ..catalog import Video
from ..taxonomy import Taxonomy
from .backend import Backend
from .config import LLMConfig
from .engine import run
from .job import RunSummary
from .prompt import Prompt


class LLMAnnotator:
    """Annotate with an LLM backend; results and cache persist in ``out_dir`` (a temporary one if None).

    Videos that failed have no rows; ``summary_`` counts them and ``out_dir/failures`` holds why.
    """

    source = "llm"

    def __init__(
        self, backend: Backend, config: LLMConfig | None = None, out_dir: str | Path | None = None, prompt: Prompt | None = None
    ) -> None:
        self.backend = backend
        self.config = config or LLMConfig()
        self.out_dir = out_dir
        self.prompt = prompt
        self.name = f"llm:{backend.model}"

    def annotate(self, videos: Sequence[Video], taxonomy: Taxonomy) -> pd.DataFrame:
        out_dir = Path(self.out_dir or tempfile.mkdtemp(prefix="vibeset-llm-"))
        self.summary_: RunSummary = asyncio.run(run(videos, taxonomy, self.backend, self.config, out_dir, prompt=self.prompt))
        if not any(out_dir.glob("part-*.parquet")):
            return pd.DataFrame(columns=list(COLUMNS))
        frame = read_annotations(out_dir)
        return frame[frame["video_id"].isin({v.video_id for v in videos})].reset_index(drop=True)

