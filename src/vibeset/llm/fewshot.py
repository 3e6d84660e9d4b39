"""Few-shot examples chosen per video from the golden DEV split: near in meaning, diverse in labels.

For each video the ``k`` examples are taken from golden dev videos (never the test split, never
the video itself) among its ``4k`` nearest neighbours in the text embedding, greedily, each pick
scoring its cosine similarity plus the share of the taxonomy's attributes for which it adds an
(attribute, label) value the picks so far do not show, so the model sees both what counts and
what does not, for as many attributes as the neighbourhood allows. The choice is a function of
the video, the dev split's version, the encoder and ``k``: those make the ``identity`` that
enters the prompt version, so labels made with other examples never share a version or a cache entry.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..catalog import Video
from ..errors import ConfigError
from ..golden import GoldenSet
from ..taxonomy import Taxonomy
from ..hashing import content_hash
from .config import LLMConfig
from .prompt import Example, Prompt, PromptTemplate

METHOD = "knn-label-diverse-v1"
#: Neighbours considered per pick: the greedy step looks at this many times k candidates.
POOL_FACTOR = 4
#: Weight of label novelty (new (attribute, label) values, as a share of the taxonomy) against cosine similarity.
DIVERSITY = 1.0

Embed = Callable[[Sequence[str]], np.ndarray]


class FewShot:
    """``examples(video)``: k labelled golden dev videos for ``video``.

    ``dev`` must be the dev split; ``held_out`` names videos that may never be shown (the test
    split), checked here so a wrong split is an error rather than a leak.
    """

    def __init__(
        self, k: int, dev: GoldenSet, videos: Mapping[str, Video], embed: Embed, *,
        encoder: str, held_out: set[str] = frozenset(),
    ) -> None:
        if k < 0:
            raise ConfigError(f"few-shot k must be 0 or more, got {k}")
        labels = dev.pairs.groupby("video_id")[["attribute", "label"]].apply(
            lambda rows: dict(zip(rows["attribute"], rows["label"].astype(bool)))
        )
        ids = sorted(set(labels.index) & set(videos))
        leaked = set(ids) & set(held_out)
        if leaked:
            raise ConfigError(f"few-shot pool holds {len(leaked)} held-out (test) video(s), e.g. {sorted(leaked)[0]!r}")
        self.k = k
        self.attributes = max(1, dev.pairs["attribute"].nunique())
        self.ids = ids
        self.videos = [videos[i] for i in ids]
        self.labels = [labels[i] for i in ids]
        self.embed = embed
        self.identity: dict[str, Any] = {"k": k, "method": METHOD, "golden_version": dev.version, "encoder": encoder,
                                         "pool": content_hash(ids)}
        self._pool = embed([video.text() for video in self.videos]) if k and ids else np.zeros((0, 1), np.float32)
        self._chosen: dict[str, list[Example]] = {}

    def prepare(self, videos: Sequence[Video]) -> None:
        """Choose examples for many videos at once (one encoder pass instead of one per video)."""
        todo = [video for video in videos if video.video_id not in self._chosen]
        if not todo or not self.k:
            return
        vectors = self.embed([video.text() for video in todo])
        for video, vector in zip(todo, vectors):
            self._chosen[video.video_id] = self._choose(video.video_id, vector)

    def examples(self, video: Video) -> list[Example]:
        if not self.k or not self.ids:
            return []
        if video.video_id not in self._chosen:
            self.prepare([video])
        return self._chosen[video.video_id]

    def _choose(self, video_id: str, vector: np.ndarray) -> list[Example]:
        similarity = self._pool @ vector
        order = [i for i in np.argsort(-similarity, kind="stable") if self.ids[i] != video_id]
        candidates = order[: POOL_FACTOR * self.k]
        picked: list[int] = []
        shown: set[tuple[str, bool]] = set()
        while candidates and len(picked) < self.k:
            def gain(i: int) -> float:
                return float(similarity[i]) + DIVERSITY * len(set(self.labels[i].items()) - shown) / self.attributes

            best = max(candidates, key=gain)
            candidates.remove(best)
            picked.append(best)
            shown |= set(self.labels[best].items())
        return [Example(self.videos[i], self.labels[i]) for i in picked]


def workspace_few_shot(workspace: Any, k: int) -> FewShot | None:
    """The workspace's few-shot selector over golden dev (None for k = 0 or a workspace without judgements).

    Of the test split only its video ids are read, to refuse them; no test label is looked at.
    """
    if k <= 0 or not workspace.config.judgements:
        return None
    from ..encoder import workspace_encoder
    from ..golden import workspace_golden

    golden = workspace_golden(workspace)
    dev, test = golden.split("dev"), golden.split("test")
    encoder = workspace_encoder(workspace)
    ids = sorted(set(dev.pairs["video_id"]))
    videos = {video.video_id: video for video in workspace.catalog.subset(ids)}
    return FewShot(k, dev, videos, encoder.encode, encoder=encoder.name, held_out=set(test.pairs["video_id"]))


def workspace_prompt(workspace: Any, taxonomy: Taxonomy, config: LLMConfig) -> Prompt:
    """The annotation prompt a workspace's ``[llm]`` table asks for: template, domain and few-shot k."""
    shots = workspace_few_shot(workspace, config.shots)
    return Prompt(taxonomy, PromptTemplate.load(config.prompt), shots=shots, domain=config.domain)
