"""The annotation prompt: Jinja2 templates rendered from the taxonomy, versioned by content hash.

Untrusted video text is never spliced into instructions: it is serialised as a JSON object
and fenced between ``<video_data>`` markers, with ``<``, ``>`` and ``&`` escaped so no title
or description can close the fence or open a new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from jinja2 import Environment, StrictUndefined, TemplateSyntaxError

from ..catalog import Video
from ..errors import ConfigError
from ..hashing import content_hash
from ..taxonomy import Taxonomy
from .backend import Request

FENCE_OPEN = "<video_data>"
FENCE_CLOSE = "</video_data>"
_ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, trim_blocks=True)


@dataclass(frozen=True)
class Example:
    """A labelled video shown to the model as a few-shot example."""

    video: Video
    labels: Mapping[str, bool]


def fence(video: Video) -> str:
    """The video's text fields as escaped JSON: data the model reads, never instructions."""
    data = {"title": video.title, "tags": list(video.tags), "description": video.description}
    if video.transcript:
        data["transcript"] = video.transcript
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def response_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    """JSON schema of one answer: every attribute -> {label, confidence, evidence}, nothing else.

    Ranges are stated in descriptions rather than ``minimum``/``maximum`` because strict
    structured-output modes reject those keywords; the parser enforces them.
    """
    judgement = {
        "type": "object",
        "properties": {
            "label": {"type": "boolean"},
            "confidence": {"type": "number", "description": "confidence in the label, 0 to 1"},
            "evidence": {"type": "string", "description": "short reason, at most 20 words"},
        },
        "required": ["label", "confidence", "evidence"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {name: judgement for name in taxonomy.names},
        "required": taxonomy.names,
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class PromptTemplate:
    """A pair of template sources: the system instructions and the per-video user message."""

    name: str
    system: str
    user: str

    @classmethod
    def load(cls, template: str | Path = "annotate") -> "PromptTemplate":
        """A bundled template by name, or ``path/NAME.system.j2`` with its sibling ``NAME.user.j2``."""
        path = Path(template)
        if path.name.endswith(".system.j2"):
            stem = path.name[: -len(".system.j2")]
            files = (path, path.with_name(f"{stem}.user.j2"))
            try:
                return cls(stem, *(file.read_text(encoding="utf-8") for file in files))
            except OSError as err:
                raise ConfigError(f"{err.filename}: cannot read prompt template: {err.strerror}") from err
        bundled = resources.files("vibeset") / "prompts"
        try:
            sources = [(bundled / f"{template}.{part}.j2").read_text(encoding="utf-8") for part in ("system", "user")]
        except (OSError, FileNotFoundError) as err:
            raise ConfigError(
                f"unknown prompt template {str(template)!r}: expected a bundled name such as 'annotate' "
                "or a path ending in .system.j2"
            ) from err
        return cls(str(template), *sources)


class Shots(Protocol):
    """Per-video few-shot examples (``fewshot.FewShot``); ``identity`` enters the prompt version."""

    identity: Mapping[str, Any]

    def examples(self, video: Video) -> Sequence[Example]: ...


class Prompt:
    """A template bound to a taxonomy, a domain and few-shot examples; renders one request per video.

    ``examples`` are shown with every video; ``shots`` chooses more per video. Examples go in the
    user message, before the video, so the system text (the long, cacheable prefix) is shared.
    """

    def __init__(
        self, taxonomy: Taxonomy, template: PromptTemplate | None = None, examples: Sequence[Example] = (), *,
        shots: Shots | None = None, domain: str = "videos",
    ) -> None:
        self.taxonomy = taxonomy
        self.template = template or PromptTemplate.load()
        self.shots = shots
        self.domain = domain
        for example in examples:
            taxonomy.check_names(list(example.labels))
        try:
            system = _ENV.from_string(self.template.system)
            self._user = _ENV.from_string(self.template.user)
        except TemplateSyntaxError as err:
            raise ConfigError(f"prompt template {self.template.name!r}, line {err.lineno}: {err.message}") from err
        self._examples = [self._example(e) for e in examples]
        self.system = system.render(attributes=list(taxonomy), domain=domain)
        self.schema = response_schema(taxonomy)
        identity = [self.template.system, self.template.user, taxonomy.version, self._examples, domain]
        self.version = content_hash([*identity, dict(shots.identity)] if shots else identity)
        """Hash of template sources + taxonomy version + examples + domain (+ the few-shot choice): what produced a label."""

    def _example(self, example: Example) -> dict[str, str]:
        labels = {name: example.labels[name] for name in self.taxonomy.names if name in example.labels}
        return {"data": fence(example.video), "labels": json.dumps(labels)}

    def examples(self, video: Video) -> list[dict[str, str]]:
        """The rendered examples shown with ``video``: the fixed ones, then the ones chosen for it."""
        if self.shots is None:
            return self._examples
        return self._examples + [self._example(e) for e in self.shots.examples(video)]

    def render(self, video: Video, *, images: Sequence[bytes] = (), media: str | None = None) -> Request:
        """The request for one video: shared system text, examples and fenced video data, optional frames or media."""
        user = self._user.render(data=fence(video), examples=self.examples(video))
        return Request(system=self.system, user=user, schema=self.schema, images=tuple(images), media=media)
