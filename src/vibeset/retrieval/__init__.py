"""Personalized restricted retrieval: CF embeddings, the attribute index, intent and exact top-K."""

from .collaborative import CollaborativeModel
from .index import AttributeIndex, build_index, list_versions, load_index
from .intent import Intent, QueryParser, explicit_intent, infer_intent
from .recommender import Recommender, UnknownUserError
from .topk import RestrictedTopK, TopK

__all__ = [
    "AttributeIndex",
    "CollaborativeModel",
    "Intent",
    "QueryParser",
    "Recommender",
    "RestrictedTopK",
    "TopK",
    "UnknownUserError",
    "build_index",
    "explicit_intent",
    "infer_intent",
    "list_versions",
    "load_index",
]
