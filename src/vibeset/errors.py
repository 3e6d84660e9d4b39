"""One exception hierarchy for vibeset.

Configuration and programmer errors raise; failures of a single item (one video's
LLM answer, one row of a batch) are recorded as data instead.
"""

from __future__ import annotations


class VibesetError(Exception):
    """Base class of every error vibeset raises on purpose."""


class ConfigError(VibesetError):
    """A configuration, taxonomy or workspace file is missing or invalid."""


class DataError(VibesetError):
    """An input data file (catalog, judgements, interactions, annotations) is malformed."""


class ArtifactError(DataError):
    """An artifact the pipeline wrote is missing, incomplete or corrupt (the message names the file)."""


class LockedError(VibesetError):
    """Another process is writing the artifact (the message names the holder)."""


class UnknownAttributeError(VibesetError, KeyError):
    """An attribute name that the taxonomy does not define."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NotFittedError(VibesetError, ValueError):
    """A model was used before ``fit`` (or before its artifacts were loaded)."""


class BackendError(VibesetError):
    """An annotation backend (LLM provider, encoder runtime) failed for the whole job."""
