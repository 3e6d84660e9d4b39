"""The golden-set iteration loop: error analysis (``analysis``), paired comparison (``compare``),
refinement (``refine``) and promotion (``promote``).

Runs, the test-split guard and the champion record live in ``vibeset.runs``; versions in
``vibeset.annotate.versions``.
"""
