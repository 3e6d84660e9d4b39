"""Distillation: the student's features, the MLP exported to ONNX, calibration on golden dev, the router.

``vibeset.distill.distillation.run_distillation`` trains one (imported on demand: it needs torch).
"""

from .features import FeatureSpace, build_feature_space, parse_groups
from .student import Student, load_student

__all__ = ["FeatureSpace", "Student", "build_feature_space", "load_student", "parse_groups"]
