"""HTTP serving of restricted retrieval."""

from .api import create_app

__all__ = ["create_app"]
