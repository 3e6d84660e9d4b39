"""Zero-shot annotator: similarity of a video's text to each attribute's written definition.

This is an embedding baseline, not an LLM. It is the offline default teacher: it needs no
network, and the golden dev split calibrates one threshold per attribute. Refinement can add
prototype texts (e.g. golden dev examples) per attribute: positives pull the attribute
vector towards them, negatives are subtracted.
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..annotation import annotations_frame
from ..artifacts import Artifact, Stamp
from ..calibration import best_threshold
from ..catalog import Video
from ..encoder import Encoder
from ..errors import ConfigError, DataError, NotFittedError
from ..golden import GoldenSet
from ..hashing import content_hash
from ..taxonomy import Taxonomy

STATE_FILE = "zeroshot.json"
OBJECTIVES = ("mcc", "f1")


class ZeroShotAnnotator:
    """Scores (video, attribute) by cosine similarity; thresholds fitted on golden dev pairs.

    ``score`` is a logistic squash of the similarity centred on the attribute's threshold
    (scaled by the spread of similarities), so 0.5 is the decision boundary for every
    attribute and scores are comparable across attributes.
    """

    name = "zero-shot"
    source = "zero-shot"

    def __init__(
        self,
        encoder: Encoder,
        *,
        objective: str = "mcc",
        positives: Mapping[str, Sequence[str]] | None = None,
        negatives: Mapping[str, Sequence[str]] | None = None,
        negative_weight: float = 0.5,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.encoder = encoder
        self.objective = objective
        self.positives = dict(positives or {})
        self.negatives = dict(negatives or {})
        self.negative_weight = negative_weight

    # -- scoring -------------------------------------------------------------------
    def _attribute_vectors(self, taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
        definitions = self.encoder.encode([attribute.describe() for attribute in taxonomy])
        positive = definitions.copy()
        negative = np.zeros_like(definitions)
        for i, name in enumerate(taxonomy.names):
            if self.positives.get(name):
                examples = self.encoder.encode(list(self.positives[name]))
                positive[i] = definitions[i] + examples.mean(axis=0)
            if self.negatives.get(name):
                negative[i] = self.encoder.encode(list(self.negatives[name])).mean(axis=0)
        positive /= np.linalg.norm(positive, axis=1, keepdims=True)
        return positive, negative

    def similarity(self, videos: Sequence[Video], taxonomy: Taxonomy) -> np.ndarray:
        """Raw similarity matrix (videos x attributes)."""
        embeddings = self.encoder.encode([video.text() for video in videos])
        positive, negative = self._attribute_vectors(taxonomy)
        return embeddings @ positive.T - self.negative_weight * (embeddings @ negative.T)

    # -- estimator -------------------------------------------------------------------
    def fit(self, videos: Sequence[Video], taxonomy: Taxonomy, golden: GoldenSet) -> "ZeroShotAnnotator":
        """Calibrate one threshold per attribute on ``golden`` pairs (pass the dev split only)."""
        by_id = {video.video_id: video for video in videos}
        pairs = golden.pairs[golden.pairs["video_id"].isin(by_id)]
        if pairs.empty:
            raise DataError("no golden pairs among the given videos; cannot calibrate zero-shot thresholds")
        ids = sorted(pairs["video_id"].unique())
        sims = self.similarity([by_id[v] for v in ids], taxonomy)
        row = {video_id: i for i, video_id in enumerate(ids)}
        self.thresholds_: dict[str, float] = {}
        self.scales_: dict[str, float] = {}
        for j, name in enumerate(taxonomy.names):
            column = sims[:, j]
            self.scales_[name] = float(np.std(column) + 1e-6)
            subset = pairs[pairs["attribute"] == name]
            if subset.empty or subset["label"].nunique() < 2:
                self.thresholds_[name] = float(np.median(column))
                continue
            values = column[[row[v] for v in subset["video_id"]]]
            self.thresholds_[name] = best_threshold(values, subset["label"].to_numpy(), self.objective)[0]
        self.taxonomy_version_ = taxonomy.version
        self.golden_version_ = golden.version
        return self

    def _check_fitted(self, taxonomy: Taxonomy) -> None:
        if not hasattr(self, "thresholds_"):
            raise NotFittedError("ZeroShotAnnotator is not fitted; call fit() on the golden dev split or load()")
        if self.taxonomy_version_ != taxonomy.version:
            raise NotFittedError(
                f"zero-shot thresholds were fitted on taxonomy {self.taxonomy_version_}, not {taxonomy.version}; refit"
            )

    def predict_proba(self, videos: Sequence[Video], taxonomy: Taxonomy) -> np.ndarray:
        """Calibrated scores in (0, 1), videos x attributes; 0.5 is each attribute's threshold."""
        self._check_fitted(taxonomy)
        sims = self.similarity(videos, taxonomy)
        thresholds = np.array([self.thresholds_[n] for n in taxonomy.names])
        scales = np.array([self.scales_[n] for n in taxonomy.names])
        return 1.0 / (1.0 + np.exp(-(sims - thresholds) / scales))

    def annotate(self, videos: Sequence[Video], taxonomy: Taxonomy, run_id: str = "") -> pd.DataFrame:
        scores = self.predict_proba(videos, taxonomy)
        names = taxonomy.names
        ids = np.repeat([video.video_id for video in videos], len(names))
        flat = scores.ravel()
        return annotations_frame(
            {
                "video_id": ids,
                "attribute": np.tile(names, len(videos)),
                "score": flat.astype(np.float32),
                "label": flat >= 0.5,
                "evidence": "",
                "source": self.source,
                "model": self.encoder.name,
                "run_id": run_id,
                "prompt_version": self.version,
                "taxonomy_version": taxonomy.version,
            }
        )

    @property
    def version(self) -> str:
        """Content hash of what defines this annotator's behaviour (prototypes + thresholds)."""
        return content_hash([self.encoder.name, self.positives, self.negatives, getattr(self, "thresholds_", None)])

    # -- persistence -----------------------------------------------------------------------------
    def state(self) -> dict:
        if not hasattr(self, "thresholds_"):
            raise NotFittedError("cannot save an unfitted ZeroShotAnnotator")
        return {
            "encoder": self.encoder.name,
            "objective": self.objective,
            "negative_weight": self.negative_weight,
            "positives": self.positives,
            "negatives": self.negatives,
            "thresholds": self.thresholds_,
            "scales": self.scales_,
            "taxonomy_version": self.taxonomy_version_,
            "golden_version": self.golden_version_,
        }

    def save(self, artifact: Artifact, stamp: Stamp) -> None:
        """Write the fitted annotator as ``artifact`` (a zero-shot or zero-shot-version artifact)."""
        state = self.state()
        stamp.lineage = {"model": self.encoder.name, "prompt_version": self.version,
                         "taxonomy_version": self.taxonomy_version_, "golden_version": self.golden_version_,
                         **(stamp.lineage or {})}
        with artifact.replace(stamp) as staging:
            (staging / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, artifact: Artifact, encoder: Encoder) -> "ZeroShotAnnotator":
        artifact.complete_manifest()
        state = artifact.read_json(STATE_FILE)
        with artifact.reading(artifact.path / STATE_FILE):
            if state["encoder"] != encoder.name:
                raise ConfigError(f"fitted with encoder {state['encoder']!r}, not {encoder.name!r}")
            annotator = cls(
                encoder,
                objective=state["objective"],
                positives=state["positives"],
                negatives=state["negatives"],
                negative_weight=state["negative_weight"],
            )
            annotator.thresholds_ = dict(state["thresholds"])
            annotator.scales_ = dict(state["scales"])
            annotator.taxonomy_version_ = str(state["taxonomy_version"])
            annotator.golden_version_ = str(state["golden_version"])
        return annotator
