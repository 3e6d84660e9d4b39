"""Intent: which attributes to restrict to (and which to exclude), asked or inferred.

- explicit: attribute names in the request;
- query: free text ("something uplifting but not sappy") split into clauses; a clause led by a
  negation ("not", "no", "without", ...) names an exclusion. Each clause maps to its closest
  attribute by name/alias, else by encoder similarity to the attribute definitions, kept only at
  or above a confidence threshold; the whole mapping is returned so callers can show why;
- inferred: the attributes over-represented in what a user liked, relative to the catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..encoder import Encoder
from ..errors import DataError, UnknownAttributeError
from .index import AttributeIndex

SOURCES = ("explicit", "query", "inferred")
_SPLIT = re.compile(
    r"\s*(?:[,;.!?/]|\bbut\b|\band\b|\bor\b|\bwith\b|\bthough\b|\balthough\b|\bplus\b)\s*"
    r"|\s+(?=(?:without|except|minus|nothing|not|no)\b)",
    re.I,
)
_NEGATION = re.compile(
    r"^(?:not|no|without|nothing|never|avoid(?:ing)?|except|minus|non|none|isn'?t|aren'?t|don'?t|doesn'?t|less)\b[\s-]*",
    re.I,
)
_FILLER = re.compile(
    r"\b(?:i|me|my|want|wanna|like|would|something|anything|some|any|a|an|the|film|films|movie|movies|"
    r"show|give|find|please|too|very|so|overly|really|that|is|are|be|kind|of|much|bit|little|one|ones|for|tonight)\b",
    re.I,
)


@dataclass(frozen=True)
class Intent:
    """Attributes to require and to exclude, where they came from, and how the text was read."""

    attributes: list[str]
    excluded: list[str] = field(default_factory=list)
    source: str = "explicit"
    query: str | None = None
    mapping: list[dict[str, Any]] = field(default_factory=list)
    explanation: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": self.attributes, "excluded": self.excluded, "source": self.source}
        if self.query is not None:
            out["query"] = self.query
        if self.mapping:
            out["mapping"] = self.mapping
        if self.explanation:
            out["explanation"] = self.explanation
        return out


def explicit_intent(known: Sequence[str], attributes: Sequence[str], excluded: Sequence[str] = ()) -> Intent:
    """Check names against ``known``; raise UnknownAttributeError naming the first unknown one."""
    names = set(known)
    for name in [*attributes, *excluded]:
        if name not in names:
            raise UnknownAttributeError(f"unknown attribute {name!r}; known: {', '.join(known)}")
    both = sorted(set(attributes) & set(excluded))
    if both:
        raise DataError(f"attribute(s) {both} are both requested and excluded")
    return Intent(attributes=list(dict.fromkeys(attributes)), excluded=list(dict.fromkeys(excluded)))


class QueryParser:
    """Maps free text to attributes and exclusions with an encoder and a similarity threshold."""

    def __init__(
        self,
        descriptions: Mapping[str, str],
        encoder: Encoder,
        *,
        aliases: Mapping[str, Sequence[str]] | None = None,
        threshold: float = 0.3,
    ) -> None:
        self.names = list(descriptions)
        self.encoder = encoder
        self.threshold = threshold
        self.lexicon: dict[str, str] = {}
        for name in self.names:
            for alias in (name, name.replace("-", " "), *(aliases or {}).get(name, ())):
                self.lexicon.setdefault(alias.lower(), name)
        short = [f"{name.replace('-', ' ')}: {', '.join((aliases or {}).get(name, ()))}" for name in self.names]
        vectors = encoder.encode([descriptions[n] for n in self.names] + short)
        self._vectors = vectors.reshape(2, len(self.names), -1)

    def clauses(self, text: str) -> list[tuple[str, bool]]:
        """(core words, negated) per clause, fillers removed; empty clauses dropped."""
        out = []
        for part in _SPLIT.split(text.strip()):
            negated = bool(_NEGATION.match(part))
            core = _NEGATION.sub("", part) if negated else part
            core = " ".join(_FILLER.sub(" ", core).split())
            if core:
                out.append((core, negated))
        return out

    def parse(self, text: str) -> Intent:
        if not text.strip():
            raise DataError("empty intent query; expected text such as 'something uplifting but not sappy'")
        clauses = self.clauses(text)
        cores = [core for core, _ in clauses]
        similarity = np.zeros((len(cores), len(self.names)), dtype=np.float32)
        if cores:
            encoded = self.encoder.encode(cores)
            similarity = np.max(np.einsum("cd,vnd->vcn", encoded, self._vectors), axis=0)
        attributes: list[str] = []
        excluded: list[str] = []
        mapping = []
        for (core, negated), row in zip(clauses, similarity):
            lexical = self.lexicon.get(core.lower())
            order = np.argsort(-row)[:3]
            best, score = (lexical, 1.0) if lexical else (self.names[order[0]], float(row[order[0]]))
            accepted = score >= self.threshold
            if accepted:
                target = excluded if negated else attributes
                if best not in attributes and best not in excluded:
                    target.append(best)
            mapping.append(
                {
                    "text": core,
                    "negated": negated,
                    "attribute": best if accepted else None,
                    "similarity": round(score, 4),
                    "candidates": [{"attribute": self.names[i], "similarity": round(float(row[i]), 4)} for i in order],
                }
            )
        explanation = (
            f"restricted to {', '.join(attributes) or 'any vibe'}"
            + (f", excluding {', '.join(excluded)}" if excluded else "")
            + f" (similarity threshold {self.threshold})"
        )
        return Intent(attributes, excluded, "query", text, mapping, explanation)


def infer_intent(index: AttributeIndex, user_row: int, *, top: int = 1, min_support: int = 3, prior: float = 5.0) -> Intent:
    """The user's strongest vibes: attributes over-represented in what they liked (rated >= their mean).

    Affinity is the smoothed share of liked items carrying the attribute divided by its
    catalog prevalence; attributes with fewer than ``min_support`` liked items are ignored.
    """
    rows, ratings = index.seen(user_row)
    liked = np.asarray(rows[ratings >= ratings.mean()] if len(rows) else rows, dtype=np.int64)
    affinity = []
    for position, name in enumerate(index.attributes):
        postings, _ = index.postings(position)
        prevalence = max(len(postings), 1) / max(len(index), 1)
        count = int(np.isin(liked, postings, assume_unique=True).sum()) if len(liked) else 0
        rate = (count + prior * prevalence) / (len(liked) + prior)
        if count >= min_support:
            affinity.append((rate / prevalence, name, count))
    affinity.sort(reverse=True)
    chosen = [name for _, name, _ in affinity[:top]]
    mapping = [{"attribute": name, "lift": round(lift, 3), "liked_items": count} for lift, name, count in affinity[:top]]
    domain = str(index.manifest.get("domain", "videos"))  # the workspace's word for its items
    explanation = f"more {' and '.join(chosen)} {domain} for you" if chosen else "no strong vibe in this user's history"
    return Intent(chosen, [], "inferred", None, mapping, explanation)
