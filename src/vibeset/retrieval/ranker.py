"""The ranker stage: the sequential model for serving, and the default ranker and blend, chosen offline.

The choice is made on a validation split nested inside the evaluation's training data: each
user's last ``last`` interactions are set aside for the test (never seen here), the ``last``
before them are the validation targets, and ALS and the sequential model are fitted on the rest.
Every (ranker, blend) answers the predicted-vibe protocol's queries restricted to the vibe; the
best NDCG@K wins. The model served is then refitted on every interaction.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..artifacts import Artifact, Stamp
from ..interactions import leave_last_split, workspace_interactions
from ..workspace import Workspace
from .build import build_workspace_index
from .evaluation import System, evaluate_protocol, fitted_index, positives, predicted_queries, workspace_content
from .recommender import Recommender
from .sequential import SequentialModel, save_sequential

BLENDS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def choose(recommender: Recommender, queries, *, blends: Sequence[float], k: int, n_boot: int = 200) -> dict[str, Any]:
    """NDCG@K of every (ranker, blend), restricted to the query's vibe; the best, and each ranker's best blend."""
    systems = [System(f"{r} blend {b:g}", r, True, float(b)) for r in recommender.index.ranker_names for b in blends]
    table = evaluate_protocol(recommender, queries, systems, k=k, lookup={}, n_boot=n_boot)["systems"]
    rows = [{"ranker": s.ranker, "blend": s.blend, f"ndcg@{k}": table[s.name][f"ndcg@{k}"],
             f"recall@{k}": table[s.name][f"recall@{k}"]} for s in systems]
    best = max(rows, key=lambda r: (r[f"ndcg@{k}"]["value"], -r["blend"]))  # ties: the smaller blend
    per_ranker = {name: max((r for r in rows if r["ranker"] == name), key=lambda r: (r[f"ndcg@{k}"]["value"], -r["blend"]))["blend"]
                  for name in recommender.index.ranker_names}
    return {"chosen": {"ranker": best["ranker"], "blend": best["blend"]}, "blends": per_ranker, "table": rows,
            "queries": len(queries), "users": int(queries["user"].nunique()) if len(queries) else 0}


def train_ranker(
    workspace: Workspace, labels: Artifact, collaborative: Artifact, shards: Artifact, out: Artifact, stamp: Stamp,
    *, settings: Mapping[str, Any] | None = None, blends: Sequence[float] = BLENDS, k: int = 10, last: int = 5,
) -> dict[str, Any]:
    """Choose the defaults on validation, fit the sequential model on all interactions, write ``out``."""
    settings = dict(settings or {})
    index = build_workspace_index(workspace, labels, collaborative)
    interactions = workspace_interactions(workspace)
    before_test, _ = leave_last_split(interactions, last=last)
    fit, validation = leave_last_split(before_test, last=last)
    evaluated = fitted_index(index, fit, workspace_content(shards, index.item_ids), settings)
    queries = predicted_queries(evaluated, positives(evaluated, validation))
    selection = choose(Recommender(evaluated), queries, blends=blends, k=k)
    selection["split"] = {"kind": f"leave-last-{last} inside leave-last-{last}", "fit_interactions": len(fit),
                          "validation_interactions": len(validation), "k": k}
    model = SequentialModel(**settings).fit(interactions, index.item_ids)
    save_sequential(model, out, stamp, meta={"selection": selection})
    return {"selection": selection, "train_seconds": model.train_seconds_, "final_loss": float(model.losses_[-1])}
