"""The student: an ONNX multi-label MLP plus per-attribute calibration, served with onnxruntime only.

A student directory holds ``student.onnx``, ``student.json`` (attributes, calibration,
thresholds, lineage) and its feature space (tag vocabulary, item factors). Scores are
calibrated on the golden dev split per attribute (Platt scaling of the logit), so a score
is comparable across attributes; the label threshold per attribute is set for the catalog:
the lowest that reaches a target precision at the vibe's estimated catalog base rate
(restricted retrieval wants precision), always labelling between half and twice that rate. Nothing here imports torch: training lives in ``mlp``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..annotation import SCHEMA, annotations_frame
from ..artifacts import KINDS, Artifact, artifacts_of
from ..calibration import calibrate_catalog, parse_objective, platt
from ..catalog import Video
from ..errors import ConfigError, NotFittedError
from ..golden import GoldenSet
from ..hashing import content_hash, file_sha256
from ..taxonomy import Taxonomy
from .features import FeatureSpace

if TYPE_CHECKING:
    from ..encoder import Encoder
    from ..workspace import Workspace

STATE = "student.json"
MODEL = "student.onnx"

@dataclass
class Calibration:
    """Per attribute: calibrated = sigmoid(a * logit + b); label = calibrated >= threshold."""

    a: np.ndarray
    b: np.ndarray
    thresholds: np.ndarray
    objective: str
    reached: list[bool]

    def apply(self, logits: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-(logits * self.a + self.b)))).astype(np.float32)

def calibrate(
    dev_logits: np.ndarray, dev_ids: Sequence[str], golden_dev: GoldenSet, catalog_logits: np.ndarray,
    attributes: Sequence[str], objective: str, *, base_rate: str = "bounds", declared: Mapping[str, float | None] | None = None,
    heldout: pd.DataFrame | None = None,
) -> tuple[Calibration, dict]:
    """Platt scaling per attribute on ``golden_dev`` pairs (pass the dev split only; ``dev_logits`` rows follow
    ``dev_ids``), then catalog thresholds from those calibrated scores and ``catalog_logits`` (every catalog
    video): the precision target at each vibe's estimated catalog base rate (``calibration.calibrate_catalog``).
    Returns the calibration and the per-vibe table (golden prevalence, base rate, share labelled, threshold).
    Attributes without both classes on dev keep the raw sigmoid.

    ``heldout`` (video_id, attribute, label, score): a teacher that learned on golden dev and whose scores are
    calibrated probabilities gives its out-of-fold dev scores; a student of its logits is then calibrated
    already (its Platt step is the identity) and is in-sample on dev, so the thresholds are judged on
    those held-out scores instead.
    """
    parse_objective(objective)
    count = len(attributes)
    a, b = np.ones(count), np.zeros(count)
    if heldout is None:
        row = {video_id: i for i, video_id in enumerate(dev_ids)}
        pairs = golden_dev.pairs[golden_dev.pairs["video_id"].isin(row)]
        rows = np.array([row[v] for v in pairs["video_id"]], dtype=int)
        vibes = pd.Index(list(attributes)).get_indexer(pairs["attribute"])
        for j in range(count):
            subset = pairs["label"].to_numpy(bool)[vibes == j]
            if len(np.unique(subset)) == 2:
                a[j], b[j] = platt(dev_logits[rows[vibes == j], j], subset)
        dev_scores = Calibration(a, b, np.full(count, 0.5), objective, []).apply(dev_logits)[rows, vibes]
    else:  # the teacher's calibrated log-odds: keep its calibration and judge thresholds on its held-out dev scores
        pairs, dev_scores = heldout, heldout["score"].to_numpy(float)
        vibes = pd.Index(list(attributes)).get_indexer(pairs["attribute"])
    calibration = Calibration(a, b, np.full(count, 0.5), objective, [True] * count)
    table = calibrate_catalog(vibes, pairs["label"].to_numpy(bool), dev_scores, calibration.apply(catalog_logits),
                              list(attributes), dict(declared or {}), objective, base_rate)
    calibration.thresholds = np.array([table[name]["threshold"] for name in attributes])
    calibration.reached = [bool(table[name]["reached"]) for name in attributes]
    return calibration, table

class Student:
    """A trained student loaded for inference (onnxruntime); an ``Annotator`` when given an encoder."""

    name = "student"
    source = "student"

    def __init__(self, directory: str | Path, *, encoder: Encoder | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.directory = Path(directory)
        files = Artifact(KINDS["student"], self.directory)  # errors name the file and 'vibeset distill'
        self.state = files.read_json(STATE)
        with files.reading(self.directory / STATE):
            self.attributes: list[str] = list(self.state["attributes"])
            cal = self.state["calibration"]
            self.calibration = Calibration(
                np.asarray(cal["a"]), np.asarray(cal["b"]), np.asarray(cal["thresholds"]), cal["objective"], cal["reached"]
            )
        with files.reading(self.directory / "features"):
            self.space = FeatureSpace.load(self.directory / "features")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        model = files.file(MODEL)
        with files.reading(model):
            self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.encoder = encoder
        self._names = pa.array(self.attributes, pa.string())

    @property
    def version(self) -> str:
        return self.state["version"]

    @property
    def lineage(self) -> dict:
        return self.state["lineage"]

    def logits(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {group: np.ascontiguousarray(blocks[group], dtype=np.float32) for group in self.space.groups}
        return self.session.run(["logits"], feeds)[0]

    def predict_proba(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        """Calibrated scores (n, A) in attribute order ``self.attributes``."""
        return self.calibration.apply(self.logits(blocks))

    def labels(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.calibration.thresholds.astype(np.float32)

    def _check_taxonomy(self, taxonomy: Taxonomy) -> None:
        if taxonomy.version != self.state["taxonomy_version"]:
            raise NotFittedError(
                f"student {self.version} was trained on taxonomy {self.state['taxonomy_version']}, "
                f"not {taxonomy.version}; run 'vibeset distill' again"
            )

    def video_blocks(self, videos: Sequence[Video]) -> dict[str, np.ndarray]:
        if self.encoder is None:
            raise NotFittedError("this Student has no encoder; load it with load_student(ws) or pass encoder=")
        if self.encoder.name != self.space.encoder:
            raise ConfigError(f"student reads {self.space.encoder!r} embeddings, not {self.encoder.name!r}")
        text = self.encoder.encode([video.text() for video in videos])
        return self.space.blocks([v.video_id for v in videos], text, [list(v.tags) for v in videos])

    def annotate(self, videos: Sequence[Video], taxonomy: Taxonomy) -> pd.DataFrame:
        self._check_taxonomy(taxonomy)
        scores = self.predict_proba(self.video_blocks(videos)) if videos else np.zeros((0, len(self.attributes)), np.float32)
        table = self.annotation_table(pa.array([v.video_id for v in videos], pa.string()), scores)
        return annotations_frame(table.to_pandas())

    def annotation_table(self, ids: pa.Array, scores: np.ndarray, run_id: str = "") -> pa.Table:
        """The annotations table (``annotation.SCHEMA``) for rows ``ids``, built column-wise in Arrow."""
        n, count = len(ids), len(self.attributes)

        def constant(value: str) -> pa.Array:
            return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n * count, np.int32)), pa.array([value])).cast(pa.string())

        flat = scores.reshape(-1).astype(np.float32)
        return pa.table(
            {
                "video_id": pc.take(ids, pa.array(np.repeat(np.arange(n, dtype=np.int64), count))),
                "attribute": pc.take(self._names, pa.array(np.tile(np.arange(count, dtype=np.int64), n))),
                "score": pa.array(flat),
                "label": pa.array(self.labels(scores).reshape(-1)),
                "evidence": constant(""),
                "source": constant(self.source),
                "model": constant(f"student-{self.version}"),
                "run_id": constant(run_id),
                "prompt_version": constant(self.state["lineage"].get("prompt_version", "")),
                "taxonomy_version": constant(self.state["taxonomy_version"]),
            },
            schema=SCHEMA,
        )

def load_student(workspace: Workspace) -> Student:
    """The workspace's student (its artifact must be complete) as an Annotator over the cached encoder."""
    from ..encoder import workspace_encoder

    artifact = artifacts_of(workspace).get("student")
    artifact.complete_manifest()
    return Student(artifact.path, encoder=workspace_encoder(workspace))


def save_student(
    directory: str | Path,
    *,
    onnx_file: Path,
    space: FeatureSpace,
    attributes: list[str],
    calibration: Calibration,
    taxonomy_version: str,
    lineage: dict,
    metrics: dict,
) -> str:
    """Write a student into ``directory`` (a staging directory); returns its version (model + calibration hash)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_file, directory / MODEL)
    space.save(directory / "features")
    calibration_state = {
        "a": calibration.a.tolist(),
        "b": calibration.b.tolist(),
        "thresholds": calibration.thresholds.tolist(),
        "objective": calibration.objective,
        "reached": list(calibration.reached),
    }
    version = content_hash([file_sha256(str(directory / MODEL)), calibration_state, space.groups, attributes], 12)
    state = {
        "version": version,
        "vibeset_version": package_version("vibeset"),
        "attributes": attributes,
        "taxonomy_version": taxonomy_version,
        "groups": list(space.groups),
        "calibration": calibration_state,
        "lineage": lineage,
        "metrics": metrics,
    }
    (directory / STATE).write_text(json.dumps(state, indent=2, default=float))
    return version
