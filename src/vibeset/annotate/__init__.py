"""Annotators other than the LLM engine: the zero-shot encoder baseline."""

from .zeroshot import ZeroShotAnnotator

__all__ = ["ZeroShotAnnotator"]
