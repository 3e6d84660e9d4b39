"""The teacher stage: the zero-shot baseline, versions under iteration, the teacher's labels, the Silver Set."""

from .silver import build_silver, load_silver, sample_catalog
from .teacher import local_engine, teacher_slug, write_llm_labels, write_zero_shot_labels, zero_shot_teacher
from .zeroshot import ZeroShotAnnotator

__all__ = [
    "ZeroShotAnnotator",
    "build_silver",
    "local_engine",
    "load_silver",
    "sample_catalog",
    "teacher_slug",
    "write_llm_labels",
    "write_zero_shot_labels",
    "zero_shot_teacher",
]
