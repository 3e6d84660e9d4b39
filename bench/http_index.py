"""Write the synthetic index the HTTP benchmark serves: 100k items x 64-d, 50 attributes, 10k users."""

import sys

from vibeset.retrieval.synthetic import synthetic_index

root = sys.argv[1]
index = synthetic_index(
    items=100_000, users=10_000, dim=64, attributes=50, prevalence=(0.001, 0.2), labelled_only=True, seed=0
)
print(index.save(root))
