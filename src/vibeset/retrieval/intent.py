"""Intent: which vibes to restrict to (and which to exclude), asked or inferred, and what was not understood.

- explicit: vibe names in the request; an unknown name is an error naming the closest vibes;
- query: free text ("something uplifting but not sappy") split into clauses; a clause led by a
  negation ("not", "no", "without", ...) names an exclusion. Each clause maps to a vibe by
  name/alias, else by encoder similarity to the vibe definitions at or above a threshold; a
  clause that maps to nothing is reported as ignored, and text that maps to no vibe at all is an
  error naming the closest vibes (unless the caller asked for an unrestricted fallback);
- inferred: the vibes over-represented in what a user liked, relative to the catalog.

Parsing is bounded: at most ``MAX_CHARS`` characters and ``MAX_CLAUSES`` clauses, names and
aliases are looked up before the encoder runs, and encoded clauses are cached.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np

from ..encoder import Encoder
from ..errors import DataError, UnknownAttributeError
from .index import AttributeIndex

MAX_CHARS = 200
MAX_CLAUSES = 4
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


class IntentError(DataError):
    """An intent that cannot be answered as asked: no vibe matched, unknown names, or a contradiction.

    ``closest`` names the vibes nearest to what was asked, for the caller to offer instead.
    """

    def __init__(self, message: str, closest: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.closest = list(closest)


class UnknownVibeError(IntentError, UnknownAttributeError):
    """A vibe name the index does not know (with the closest known names)."""


@dataclass(frozen=True)
class Intent:
    """Vibes to require (matched) and to exclude, what was ignored, where it came from, how text was read."""

    attributes: list[str]
    excluded: list[str] = field(default_factory=list)
    source: str = "explicit"
    query: str | None = None
    mapping: list[dict[str, Any]] = field(default_factory=list)
    explanation: str = ""
    ignored: list[str] = field(default_factory=list)
    fallback: bool = False  # nothing matched and the answer is unrestricted

    @cached_property
    def encoded(self) -> bytes:
        """``to_json`` as compact JSON bytes, made once per intent (a cached explicit intent is reused)."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"matched": self.attributes, "excluded": self.excluded, "ignored": self.ignored,
                               "source": self.source}
        if self.fallback:
            out["fallback"] = "unrestricted"
        if self.query is not None:
            out["query"] = self.query
        if self.mapping:
            out["mapping"] = self.mapping
        if self.explanation:
            out["explanation"] = self.explanation
        return out


def spelling(text: str, lexicon: Mapping[str, str]) -> dict[str, float]:
    """Per vibe, how alike ``text`` and its best-matching name or alias are spelled (0..1)."""
    best: dict[str, float] = {}
    word = text.lower().strip()
    for alias, name in lexicon.items():
        best[name] = max(best.get(name, 0.0), difflib.SequenceMatcher(None, word, alias).ratio())
    return best


def _top(score: Mapping[str, float], n: int) -> list[str]:
    return [name for name, _ in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def closest_names(text: str, lexicon: Mapping[str, str], n: int = 3) -> list[str]:
    """Vibes whose names or aliases are spelled most like ``text`` (typos: 'dakr' -> dark)."""
    return _top(spelling(text, lexicon), n)


def lexicon_of(names: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Lower-case name, spaced name and aliases -> vibe name (the first vibe claiming an alias keeps it)."""
    lexicon: dict[str, str] = {}
    for name in names:
        for alias in (name, name.replace("-", " "), *(aliases or {}).get(name, ())):
            lexicon.setdefault(alias.lower(), name)
    return lexicon


def explicit_intent(
    known: Sequence[str], attributes: Sequence[str], excluded: Sequence[str] = (),
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> Intent:
    """Check names against ``known``; an unknown one is an error naming the closest known vibes."""
    names = set(known)
    for name in [*attributes, *excluded]:
        if name not in names:
            closest = closest_names(name, lexicon_of(known, aliases))
            raise UnknownVibeError(f"unknown vibe {name!r}; closest: {', '.join(closest)}", closest)
    both = sorted(set(attributes) & set(excluded))
    if both:
        raise IntentError(f"contradictory intent: {', '.join(both)} both requested and excluded")
    return Intent(attributes=list(dict.fromkeys(attributes)), excluded=list(dict.fromkeys(excluded)))


def check_length(text: str) -> None:
    if len(text) > MAX_CHARS:
        raise IntentError(f"intent text is {len(text):,} characters; at most {MAX_CHARS} are read")


class QueryParser:
    """Maps free text to vibes and exclusions: names and aliases first, then an encoder and a threshold."""

    def __init__(
        self,
        descriptions: Mapping[str, str],
        encoder: Encoder,
        *,
        aliases: Mapping[str, Sequence[str]] | None = None,
        threshold: float = 0.3,
        cache: int = 4096,
    ) -> None:
        self.names = list(descriptions)
        self.encoder = encoder
        self.threshold = threshold
        self.lexicon = lexicon_of(self.names, aliases)
        short = [f"{name.replace('-', ' ')}: {', '.join((aliases or {}).get(name, ()))}" for name in self.names]
        vectors = encoder.encode([descriptions[n] for n in self.names] + short)
        self._vectors = vectors.reshape(2, len(self.names), -1)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache

    def clauses(self, text: str) -> list[tuple[str, bool]]:
        """(core words, negated) per clause, fillers removed; empty clauses dropped."""
        check_length(text)
        out = []
        for part in _SPLIT.split(text.strip()):
            negated = bool(_NEGATION.match(part))
            core = _NEGATION.sub("", part) if negated else part
            core = " ".join(_FILLER.sub(" ", core).split())
            if core:
                out.append((core, negated))
        if len(out) > MAX_CLAUSES:
            raise IntentError(f"intent has {len(out)} clauses; at most {MAX_CLAUSES} are read")
        return out

    def similarity(self, cores: Sequence[str]) -> np.ndarray:
        """(clauses, vibes) cosine similarity of each clause to each vibe's definition or name."""
        missing = [c for c in dict.fromkeys(cores) if c not in self._cache]
        if missing:
            for core, vector in zip(missing, self.encoder.encode(missing)):
                self._cache[core] = np.max(self._vectors @ vector, axis=0)
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack([self._cache[c] for c in cores]) if cores else np.zeros((0, len(self.names)), np.float32)

    def parse(self, text: str, *, fallback: bool = False) -> Intent:
        """The intent of ``text``; matching no vibe is an ``IntentError`` unless ``fallback`` (then unrestricted)."""
        clauses = self.clauses(text)
        if not clauses:
            raise IntentError("empty intent; expected vibe names ('dark,-sad') or text such as 'uplifting but not sappy'")
        lexical = [self.lexicon.get(core.lower()) for core, _ in clauses]
        encoded = [core for (core, _), hit in zip(clauses, lexical) if hit is None]
        similarity = dict(zip(encoded, self.similarity(encoded)))
        attributes: list[str] = []
        excluded: list[str] = []
        ignored: list[str] = []
        mapping = []
        for (core, negated), hit in zip(clauses, lexical):
            row = similarity.get(core)
            best, score = (hit, 1.0) if hit else (self.names[int(np.argmax(row))], float(np.max(row)))
            accepted = score >= self.threshold
            if accepted and best in (attributes if negated else excluded):
                raise IntentError(f"contradictory intent: {best} both requested and excluded", [best])
            if accepted and best not in attributes and best not in excluded:
                (excluded if negated else attributes).append(best)
            elif not accepted:
                ignored.append(("not " if negated else "") + core)
            clause: dict[str, Any] = {"text": core, "negated": negated, "attribute": best if accepted else None,
                                      "similarity": round(score, 4)}
            if row is not None:
                order = np.argsort(-row)[:3]
                clause["candidates"] = [{"attribute": self.names[i], "similarity": round(float(row[i]), 4)} for i in order]
            mapping.append(clause)
        if not attributes and not excluded and not fallback:
            closest = self.closest(clauses, similarity)
            raise IntentError(f"intent {text.strip()[:80]!r} matches no vibe; closest: {', '.join(closest)}", closest)
        explanation = (
            f"restricted to {', '.join(attributes) or 'any vibe'}"
            + (f", excluding {', '.join(excluded)}" if excluded else "")
            + (f"; ignored {', '.join(ignored)}" if ignored else "")
        )
        return Intent(attributes, excluded, "query", text, mapping, explanation, ignored, fallback=not attributes and not excluded)

    def closest(self, clauses: Sequence[tuple[str, bool]], similarity: Mapping[str, np.ndarray], n: int = 3) -> list[str]:
        """The vibes nearest to any clause, by spelling or by meaning."""
        score = dict.fromkeys(self.names, 0.0)
        for core, _ in clauses:
            spelt = spelling(core, self.lexicon)
            meant = dict(zip(self.names, map(float, similarity.get(core, np.zeros(len(self.names))))))
            for name in self.names:
                score[name] = max(score[name], spelt.get(name, 0.0), meant[name])
        return _top(score, n)


def infer_intent(index: AttributeIndex, user_row: int, *, top: int = 1, min_support: int = 3) -> Intent:
    """The user's strongest vibes: attributes over-represented in what they liked (rated >= their mean).

    Over-representation is a z-score, ``(liked carrying it - expected) / sqrt(expected + 1)`` with
    ``expected`` = liked items x the vibe's catalog prevalence, so a vibe needs both lift and
    support: a rare vibe three liked films happen to carry no longer outranks one a long history
    keeps returning to. Attributes with fewer than ``min_support`` liked items are ignored; with
    none left (or none over-represented) the answer is unrestricted and flagged as a fallback.
    """
    rows, ratings = index.seen(user_row)
    liked = np.asarray(rows[ratings >= ratings.mean()] if len(rows) else rows, dtype=np.int64)
    affinity = []
    for position, name in enumerate(index.attributes):
        postings, _ = index.postings(position)
        prevalence = max(len(postings), 1) / max(len(index), 1)
        count = int(np.isin(liked, postings, assume_unique=True).sum()) if len(liked) else 0
        expected = len(liked) * prevalence
        score = (count - expected) / np.sqrt(expected + 1.0)
        if count >= min_support and score > 0:
            affinity.append((float(score), name, count, count / max(expected, 1e-9)))
    affinity.sort(reverse=True)
    chosen = [name for _, name, _, _ in affinity[:top]]
    mapping = [{"attribute": name, "z": round(z, 3), "lift": round(lift, 3), "liked_items": count}
               for z, name, count, lift in affinity[:top]]
    domain = str(index.manifest.get("domain", "videos"))  # the workspace's word for its items
    explanation = f"inferred from the history: more {' and '.join(chosen)} {domain} for you" if chosen else "no strong vibe in this user's history"
    return Intent(chosen, [], "inferred", None, mapping, explanation, fallback=not chosen)
