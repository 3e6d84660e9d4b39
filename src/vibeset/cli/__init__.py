"""vibeset command line: a library API first, a CLI verb second.

Each stage module registers its verbs on the shared ``app``.
"""

from .app import app, main
from . import core  # noqa: F401  (registers verbs)
from . import retrieval  # noqa: F401
from . import llm  # noqa: F401
from . import iterate  # noqa: F401
from . import report  # noqa: F401
from . import distill  # noqa: F401
from . import pipeline  # noqa: F401

__all__ = ["app", "main"]
