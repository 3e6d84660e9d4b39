"""The golden-set iteration loop: run registry, error analysis, comparison, refinement, guard, promotion."""

from .promote import Champion, champion, champion_taxonomy, promote
from .registry import Lineage, Run, compare_runs, get_run, list_runs, record_run

__all__ = [
    "Champion",
    "Lineage",
    "Run",
    "champion",
    "champion_taxonomy",
    "compare_runs",
    "get_run",
    "list_runs",
    "promote",
    "record_run",
]
