"""Every artifact the pipeline writes: its place, its manifest, its atomic write and its validating read.

An artifact is a directory under the workspace's artifacts directory holding its files and
``artifact.json``, the manifest: the kind, the vibeset version, the run that wrote it, the
content ids of its inputs, the sha256 of each of its files, its lineage (its own fields plus
the lineage of every input, so the chain back to the golden set cannot go missing) and
kind-specific metadata. ``content_id`` hashes the files, so a stage whose inputs did not change
can be skipped, like make or DVC.

Two ways to write, both under a per-artifact lock (one writer at a time; a lock left by a
killed run is detected through ``flock`` and taken over):

- ``Artifact.replace()``: files go to a staging directory that is swapped in whole;
- ``Artifact.update()``: resumable artifacts (LLM runs, bulk labels) are written in place, part
  by part, and the manifest is stamped when the run ends.

No other module computes an artifact path: they ask ``Artifacts`` (``workspace.artifacts``
through ``artifacts_of``) for a handle.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ArtifactError, LockedError
from .files import atomic_write_text
from .hashing import content_hash, file_sha256
from .workspace import Workspace

MANIFEST = "artifact.json"
T = TypeVar("T")


def vibeset_version() -> str:
    try:
        return package_version("vibeset")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


@dataclass(frozen=True)
class Kind:
    """One kind of artifact: where it lives (``{name}`` filled per artifact) and what rebuilds it."""

    name: str
    place: str
    rebuild: str
    description: str = ""
    content: tuple[str, ...] = ("**/*",)  # the files that make its content (hashed, verified)


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("golden", "golden", "vibeset golden", "the golden set: consensus pairs, rater judgements, agreement"),
        Kind("shards", "shards", "vibeset embed", "the catalog as Parquet shards: id, text, tags, text embedding"),
        Kind("cf", "models/cf", "vibeset cf", "collaborative user and item factors from the interactions"),
        Kind("zero-shot", "models/zero-shot", "vibeset annotate --backend zero-shot", "the fitted zero-shot annotator"),
        Kind("evidence", "models/evidence", "vibeset run --only teacher",
             "the evidence teacher: its chosen model, cross-validation, ablation and per-vibe weights"),
        Kind("zero-shot-version", "models/zero-shot/versions/{name}", "vibeset iterate refine",
             "a refined zero-shot annotator version"),
        Kind("taxonomy-version", "taxonomies/{name}", "vibeset iterate refine", "a taxonomy version (definitions)"),
        Kind("annotations", "annotations/{name}", "vibeset run (or the annotate / label verb that wrote {path})",
             "labels of one annotator",
             content=("part-*.parquet", "*.parquet")),
        Kind("silver", "silver/{name}", "vibeset silver", "the Silver Set: a stratified sample with its teacher labels"),
        Kind("student", "models/student", "vibeset distill", "the distilled student (ONNX) and its report"),
        Kind("ranker", "models/ranker", "vibeset ranker",
             "the sequential ranker (ONNX) and the default ranker and blend chosen on validation"),
        Kind("index", "index", "vibeset index build", "the attribute index versions restricted retrieval serves",
             content=("CURRENT",)),
        Kind("metrics", "metrics", "vibeset evaluate", "annotators vs the golden set and a single human rater"),
        Kind("retrieval-evaluation", "retrieval", "vibeset eval-retrieval", "the offline retrieval evaluation"),
        Kind("analysis", "iterate/reports/{name}", "vibeset iterate evaluate", "an error analysis on golden dev"),
        Kind("report", "report", "vibeset report", "the self-contained HTML report"),
    )
}

#: Files that are not artifacts with manifests but still have one place each.
PLACES = {
    "runs": "runs.sqlite",
    "embeddings": "embeddings",
    "reviews": "judgements/reviews.csv",
    "proposals": "iterate/proposals",
    "auto": "iterate/auto",
}


class Manifest(BaseModel):
    """What an artifact is and where it came from (``artifact.json``)."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str = ""
    vibeset_version: str
    created: float
    run_id: str
    stage: str = ""
    fingerprint: str = ""
    complete: bool = True
    inputs: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    content_id: str = ""
    lineage: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)


def _files(directory: Path, patterns: tuple[str, ...]) -> dict[str, str]:
    """sha256 of the content files under ``directory`` (never the manifest, locks or temporaries)."""
    out = {}
    for path in sorted({p for pattern in patterns for p in directory.glob(pattern)}):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and path.name != MANIFEST and not any(part.startswith(".") for part in relative.split("/")):
            out[relative] = file_sha256(str(path))
    return out


class Artifact:
    """A handle on one artifact: read its manifest and files with clear errors, write it atomically."""

    def __init__(self, kind: Kind, path: Path, name: str = "") -> None:
        self.kind = kind
        self.path = path
        self.name = name

    def __repr__(self) -> str:
        return f"Artifact({self.kind.name!r}, {str(self.path)!r})"

    @property
    def rebuild(self) -> str:
        return self.kind.rebuild.format(path=self.path, name=self.name)

    def error(self, file: Path | str, problem: str) -> ArtifactError:
        return ArtifactError(f"{file}: {problem}; rebuild it with '{self.rebuild}'")

    # -- reading -----------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def manifest(self) -> Manifest:
        """The validated manifest; a missing or corrupt one is an error naming the file."""
        file = self.path / MANIFEST
        if not file.is_file():
            raise self.error(self.path, f"missing (no {MANIFEST}; expected {self.kind.description or self.kind.name})")
        try:
            manifest = Manifest.model_validate_json(file.read_bytes())
        except (OSError, ValueError, ValidationError) as err:
            raise self.error(file, f"corrupt manifest ({_first_line(err)})") from err
        if manifest.kind != self.kind.name:
            raise self.error(file, f"holds a {manifest.kind!r} artifact, not {self.kind.name!r}")
        return manifest

    def complete_manifest(self) -> Manifest:
        manifest = self.manifest()
        if not manifest.complete:
            raise self.error(self.path, f"incomplete: run {manifest.run_id} did not finish")
        return manifest

    def file(self, relative: str) -> Path:
        """A file of the artifact, which must exist."""
        path = self.path / relative
        if not path.exists():
            raise self.error(path, "missing")
        return path

    @contextlib.contextmanager
    def reading(self, path: Path | str) -> Iterator[None]:
        """Any failure inside becomes one error naming ``path`` (a corrupt file can make a parser raise anything)."""
        try:
            yield
        except ArtifactError:
            raise
        except Exception as err:  # noqa: BLE001
            raise self.error(path, f"unreadable ({_first_line(err)})") from err

    def read(self, relative: str, loader: Callable[[Path], T]) -> T:
        """``loader(file)`` with any failure turned into one error naming the file."""
        path = self.file(relative)
        with self.reading(path):
            return loader(path)

    def read_json(self, relative: str) -> Any:
        return self.read(relative, lambda path: json.loads(path.read_text(encoding="utf-8")))

    def verify(self) -> bool:
        """Do the files still hash to what the manifest recorded?"""
        try:
            manifest = self.manifest()
        except ArtifactError:
            return False
        return manifest.complete and _files(self.path, self.kind.content) == manifest.files

    def lineage(self) -> dict[str, Any]:
        """This artifact's lineage with its kind, content id and run (for downstream manifests)."""
        manifest = self.complete_manifest()
        return {"kind": self.kind.name, "name": self.name, "content_id": manifest.content_id,
                "run_id": manifest.run_id, **manifest.lineage}

    # -- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, command: str = "") -> Iterator[None]:
        with hold_lock(self.path.with_name(f".{self.path.name}.lock"), str(self.path), command or " ".join(sys.argv)):
            yield

    @contextlib.contextmanager
    def replace(self, stamp: "Stamp") -> Iterator[Path]:
        """Yield a staging directory; on success it replaces the artifact whole, with its manifest."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock():
            staging = self.path.with_name(f".{self.path.name}.staging-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                yield staging
                _write_manifest(staging, self, stamp, complete=True)
                _swap_in(staging, self.path)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def update(self, stamp: "Stamp") -> Iterator[Path]:
        """Write in place (a resumable artifact); the manifest says incomplete until the block ends.

        Files a previous complete manifest recorded with another hash are corrupt and removed first,
        so the writer redoes them; files an interrupted run left (written atomically) are kept.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with self.lock():
            self._drop_corrupt()
            _write_manifest(self.path, self, stamp, complete=False, hash_files=False)
            yield self.path
            _write_manifest(self.path, self, stamp, complete=True)

    def _drop_corrupt(self) -> None:
        try:
            recorded = self.manifest().files
        except ArtifactError:
            return
        for name, digest in _files(self.path, self.kind.content).items():
            if name in recorded and recorded[name] != digest:
                (self.path / name).unlink()

    def remove(self) -> None:
        with self.lock():
            shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class Stamp:
    """What a writer stamps on an artifact: its run, stage fingerprint, inputs, lineage and metadata."""

    run_id: str
    stage: str = ""
    fingerprint: str = ""
    inputs: Mapping[str, Artifact] | None = None
    lineage: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = None


def _write_manifest(directory: Path, artifact: Artifact, stamp: Stamp, *, complete: bool, hash_files: bool = True) -> None:
    inputs = dict(stamp.inputs or {})
    files = _files(directory, artifact.kind.content) if hash_files else {}
    lineage = dict(stamp.lineage or {})
    upstream = {name: source.lineage() for name, source in inputs.items()}
    if upstream:
        lineage["inputs"] = upstream
    manifest = Manifest(
        kind=artifact.kind.name,
        name=artifact.name,
        vibeset_version=vibeset_version(),
        created=time.time(),
        run_id=stamp.run_id,
        stage=stamp.stage,
        fingerprint=stamp.fingerprint,
        complete=complete,
        inputs={name: value["content_id"] for name, value in upstream.items()},
        files=files,
        content_id=content_hash([artifact.kind.name, files], 16) if complete else "",
        lineage=_jsonable(lineage),
        meta=_jsonable(dict(stamp.meta or {})),
    )
    atomic_write_text(directory / MANIFEST, manifest.model_dump_json(indent=2))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


_RENAME_EXCHANGE = 2


def _swap_in(staging: Path, target: Path) -> None:
    """Make ``staging`` the artifact: an atomic exchange where the kernel offers one (renameat2)."""
    if not target.exists():
        os.replace(staging, target)
        return
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    at_fdcwd = -100
    if renameat2 is not None and renameat2(at_fdcwd, os.fsencode(staging), at_fdcwd, os.fsencode(target), _RENAME_EXCHANGE) == 0:
        shutil.rmtree(staging, ignore_errors=True)  # staging now holds the old artifact
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


# -- locks ---------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def hold_lock(path: Path, what: str, command: str) -> Iterator[None]:
    """An exclusive lock file naming its holder. A holder that was killed released its ``flock``
    with its death, so its leftover file is simply taken over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            raise LockedError(f"{what} is being written by {holder}; wait for it to finish or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300],
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']} ('{info['command']}', since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


# -- the catalog of a workspace -----------------------------------------------------------------------
class Artifacts:
    """The artifacts of one workspace; the only place that turns a kind into a path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, kind: str, name: str = "") -> Artifact:
        try:
            spec = KINDS[kind]
        except KeyError:
            raise ArtifactError(f"unknown artifact kind {kind!r}; known: {', '.join(KINDS)}") from None
        return Artifact(spec, self.root / spec.place.format(name=name), name)

    def place(self, name: str) -> Path:
        """A workspace file that is not an artifact (registry, caches, reviews)."""
        return self.root / PLACES[name]

    def annotations(self, name: str) -> Artifact:
        return self.get("annotations", name)

    def annotation_names(self) -> list[str]:
        directory = self.root / "annotations"
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if p.is_dir() and (p / MANIFEST).is_file())

    def at(self, path: str | Path, kind: str = "annotations") -> Artifact:
        """The artifact at a directory a user named (``annotations:DIR``), inside the workspace or not."""
        path = Path(path).resolve()
        return Artifact(KINDS[kind], path, path.name)


def artifacts_of(workspace: Workspace) -> Artifacts:
    return Artifacts(workspace.artifacts)
