"""LLM annotation: prompts (the task), backends (the model), and a run engine that loses nothing.

Library use::

    backend = LLMConfig().backend("openai", "gpt-4.1-mini")
    summary = asyncio.run(run(videos, taxonomy, backend, LLMConfig(), "out/llm/run1"))
    labels = read_annotations("out/llm/run1")
"""

from .annotator import LLMAnnotator
from .backend import Backend, CallError, Completion, Request
from .config import LLMConfig, Price
from .engine import Estimate, RunSummary, estimate, run
from .prompt import Example, Prompt, PromptTemplate, response_schema
from .response import Judgement, ParseFailure, parse_response
from .store import annotated_ids, read_failures

__all__ = [
    "Backend", "CallError", "Completion", "Estimate", "Example", "Judgement", "LLMAnnotator", "LLMConfig",
    "ParseFailure", "Price", "Prompt", "PromptTemplate", "Request", "RunSummary", "annotated_ids", "estimate",
    "parse_response", "read_failures", "response_schema", "run",
]
