"""The baseline the HTTP benchmark compares with: a plain FastAPI handler that gathers the attribute's
rows and multiplies per request (sync handler, default BLAS threads, default JSON response)."""

import os

import numpy as np
from fastapi import FastAPI

from vibeset.retrieval.index import load_index

index = load_index(os.environ["VIBESET_SERVE_TARGET"])
items = np.asarray(index.item_factors)
users = {u: i for i, u in enumerate(index.user_ids)}
postings = {name: np.asarray(index.postings(a)[0]) for a, name in enumerate(index.attributes)}
app = FastAPI()


@app.get("/recommend")
def recommend(user: str, intent: str, k: int = 10):
    rows = postings[intent]
    scores = items[rows] @ index.user_factors[users[user]]
    top = rows[np.argsort(-scores)[:k]]
    return {"user": user, "items": [{"video_id": index.item_ids[r], "title": index.titles[r]} for r in top]}
