"""Distillation: the Silver Set, the student (features, MLP, ONNX, calibration), the router, bulk labelling."""

from .features import FeatureSpace, build_feature_space, parse_groups
from .silver import build_silver, load_silver, sample_catalog, silver_dir
from .student import Student, load_student, student_dir

__all__ = [
    "FeatureSpace",
    "Student",
    "build_feature_space",
    "build_silver",
    "load_silver",
    "load_student",
    "parse_groups",
    "sample_catalog",
    "silver_dir",
    "student_dir",
]
