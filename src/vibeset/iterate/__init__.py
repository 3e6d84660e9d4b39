"""The golden-set iteration loop: error analysis, comparison, refinement and promotion.

Runs, the test-split guard and the champion record live in ``vibeset.runs``; versions in
``vibeset.annotate.versions``.
"""

from .promote import promote

__all__ = ["promote"]
