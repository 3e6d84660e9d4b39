"""LLM annotation: prompts (the task), backends (the model), and a run engine that loses nothing.

Library use::

    backend = LLMConfig().backend("openai", "gpt-4.1-mini")
    summary = asyncio.run(run(videos, taxonomy, backend, LLMConfig(), "out/llm/run1"))
    labels = read_annotations("out/llm/run1")

``LLMConfig(mode="batch")`` sends the same requests through the provider's batch API;
``workspace_prompt`` adds the workspace's domain and few-shot examples from golden dev.
"""

from .annotator import LLMAnnotator
from .backend import Backend, CallError, Completion, Request
from .calls import Caller, Usage
from .config import LLMConfig, Price
from .engine import Estimate, estimate, run
from .fewshot import FewShot, workspace_prompt
from .job import RunSummary
from .prompt import Example, Prompt, PromptTemplate, response_schema
from .response import Judgement, ParseFailure, parse_response
from .store import annotated_ids, read_confidences, read_failures

__all__ = [
    "Backend", "CallError", "Caller", "Completion", "Estimate", "Example", "FewShot", "Judgement", "LLMAnnotator",
    "LLMConfig", "ParseFailure", "Price", "Prompt", "PromptTemplate", "Request", "RunSummary", "Usage",
    "annotated_ids", "estimate", "parse_response", "read_confidences", "read_failures", "response_schema", "run",
    "workspace_prompt",
]
