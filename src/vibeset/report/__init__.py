"""The self-contained HTML report: evaluation plots, rater agreement, runs, and each later stage."""

from .document import build_sections, load_evaluation, render, write_report
from .sections import Section

__all__ = ["Section", "build_sections", "load_evaluation", "render", "write_report"]
