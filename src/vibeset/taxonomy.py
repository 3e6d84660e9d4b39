"""Attributes ("vibes") and the taxonomy that holds them, loaded from YAML.

A taxonomy's version is the hash of its content, so every label can name the exact
definitions it was made under.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError, UnknownAttributeError
from .hashing import content_hash


class Attribute(BaseModel):
    """One nuanced attribute: what it means, what counts, what does not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    definition: str = Field(min_length=10)
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    base_rate: float | None = Field(None, gt=0, lt=1, description="share of the catalog that has this vibe, when known")

    @field_validator("aliases")
    @classmethod
    def _lower_aliases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(alias.strip().lower() for alias in value)

    def describe(self) -> str:
        """Definition with what counts and what does not, as one text (for encoders and prompts)."""
        parts = [f"{self.name}: {self.definition}"]
        if self.includes:
            parts.append("Counts: " + "; ".join(self.includes) + ".")
        if self.excludes:
            parts.append("Does not count: " + "; ".join(self.excludes) + ".")
        return " ".join(parts)


class Taxonomy(BaseModel):
    """An ordered set of attributes with a content-hash version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    attributes: tuple[Attribute, ...] = Field(min_length=1)

    @property
    def version(self) -> str:
        """Content hash; an unset optional field (``base_rate``) leaves it as it was before the field existed."""
        return content_hash(self.model_dump(mode="json", exclude_none=True))

    @property
    def names(self) -> list[str]:
        return [attribute.name for attribute in self.attributes]

    def __iter__(self) -> Iterator[Attribute]:  # type: ignore[override]
        return iter(self.attributes)

    def __len__(self) -> int:
        return len(self.attributes)

    def __getitem__(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise UnknownAttributeError(f"unknown attribute {name!r}; known: {', '.join(self.names)}")

    def check_names(self, names: list[str]) -> list[str]:
        """Return ``names`` unchanged, or raise naming the first one the taxonomy lacks."""
        for name in names:
            self[name]
        return names

    def alias_map(self) -> dict[str, str]:
        """Lower-cased survey tag -> attribute name (each attribute is its own alias)."""
        mapping: dict[str, str] = {}
        for attribute in self.attributes:
            for alias in (attribute.name.replace("-", " "), attribute.name, *attribute.aliases):
                mapping[alias.lower()] = attribute.name
        return mapping

    def with_attribute(self, attribute: Attribute) -> "Taxonomy":
        """A new taxonomy with ``attribute`` replacing the one of the same name."""
        self[attribute.name]
        replaced = tuple(attribute if a.name == attribute.name else a for a in self.attributes)
        return self.model_copy(update={"attributes": replaced})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True, width=100)


def _line_of(node: yaml.Node, loc: tuple) -> int:
    """1-based line of the YAML node that a pydantic error location points at."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == key]
            if not match:
                match = [k for k, _ in node.value if k.value == key]
                return (match[0].start_mark.line if match else node.start_mark.line) + 1
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1


def parse_taxonomy(text: str, source: str = "<taxonomy>") -> Taxonomy:
    """Parse taxonomy YAML; every error names ``source`` and the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise ConfigError(f"{source}:{line}: invalid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(data, dict) or node is None:
        raise ConfigError(f"{source}:1: expected a mapping with 'name' and 'attributes'")
    try:
        taxonomy = Taxonomy.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        where = ".".join(str(part) for part in loc)
        got = f" (got {first['input']!r})" if isinstance(first.get("input"), (str, int, float)) else ""
        raise ConfigError(f"{source}:{_line_of(node, loc)}: {where}: {first['msg']}{got}") from err
    seen: dict[str, int] = {}
    for index, attribute in enumerate(taxonomy.attributes):
        line = _line_of(node, ("attributes", index))
        if attribute.name in seen:
            raise ConfigError(
                f"{source}:{line}: duplicate attribute name {attribute.name!r} (first at line {seen[attribute.name]})"
            )
        seen[attribute.name] = line
    owners: dict[str, str] = {}
    for attribute in taxonomy.attributes:
        for alias in attribute.aliases:
            if owners.setdefault(alias, attribute.name) != attribute.name:
                line = _line_of(node, ("attributes", taxonomy.names.index(attribute.name), "aliases"))
                raise ConfigError(
                    f"{source}:{line}: alias {alias!r} of {attribute.name!r} is already an alias of {owners[alias]!r}"
                )
    return taxonomy


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Load and validate a taxonomy YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read taxonomy: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a taxonomy: not UTF-8 text (byte {err.start})") from err
    return parse_taxonomy(text, str(path))
