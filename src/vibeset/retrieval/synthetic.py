"""A synthetic attribute index (random embeddings, postings and lineage) for tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..taxonomy import Attribute, Taxonomy
from .index import AttributeIndex, build_index


def synthetic_taxonomy(attributes: int) -> Taxonomy:
    return Taxonomy(
        name="synthetic",
        attributes=tuple(Attribute(name=f"a{i}", definition=f"synthetic attribute number {i}") for i in range(attributes)),
    )


def synthetic_index(
    *,
    items: int = 1000,
    users: int = 100,
    dim: int = 16,
    attributes: int = 8,
    prevalence: tuple[float, float] = (0.01, 0.3),
    seen_per_user: int = 20,
    labelled_only: bool = False,
    seed: int = 0,
) -> AttributeIndex:
    """Items ``v0..``, users ``u0..``, attributes ``a0..`` with log-spaced prevalence, random lineage.

    ``labelled_only`` keeps only positive annotations (a smaller lineage table at scale).
    """
    rng = np.random.default_rng(seed)
    taxonomy = synthetic_taxonomy(attributes)
    item_ids = [f"v{i}" for i in range(items)]
    user_ids = [f"u{i}" for i in range(users)]
    shares = np.geomspace(prevalence[0], prevalence[1], attributes)
    columns: dict[str, list] = {"video_id": [], "attribute": [], "score": [], "label": []}
    for name, share in zip(taxonomy.names, shares):
        score = rng.random(items).astype(np.float32)
        columns["video_id"] += item_ids
        columns["attribute"] += [name] * items
        columns["score"] += score.tolist()
        columns["label"] += (score >= 1.0 - share).tolist()
    annotations = pd.DataFrame(columns)
    if labelled_only:
        annotations = annotations[annotations["label"]]
    annotations["source"] = "zero-shot"
    annotations["model"] = "synthetic"
    annotations["run_id"] = f"run-{seed}"
    annotations["prompt_version"] = "p1"
    annotations["taxonomy_version"] = taxonomy.version
    seen = min(seen_per_user, items)
    interactions = pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, seen),
            "video_id": [item_ids[i] for _ in range(users) for i in rng.choice(items, seen, replace=False)],
            "rating": rng.integers(1, 11, users * seen) / 2.0,
            "timestamp": rng.integers(0, 1_000_000, users * seen),
        }
    )
    return build_index(
        item_ids=item_ids,
        titles=[f"Video {i}" for i in range(items)],
        item_factors=rng.standard_normal((items, dim), dtype=np.float32),
        user_ids=user_ids,
        user_factors=rng.standard_normal((users, dim), dtype=np.float32),
        interactions=interactions,
        annotations=annotations,
        taxonomy=taxonomy,
        manifest={"synthetic": {"seed": seed}},
    )
