"""Benchmark: exact restricted top-K (vibeset) vs FAISS filtered search, single-threaded, same process.

    .venv/bin/python bench/retrieval.py [--items 1000000] [--queries 100] [--json]

Prints, per prevalence, vibeset's p50/p99 and recall and the fastest FAISS setting reaching
recall >= 0.95, with the speed ratio (FAISS p50 / vibeset p50). Same as `vibeset bench retrieval`.
"""

import argparse
import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # single-threaded numpy; set before numpy loads
os.environ.setdefault("OMP_NUM_THREADS", "2")  # FAISS builds HNSW with 2 threads, then searches with 1

from rich.console import Console  # noqa: E402

from vibeset.retrieval.benchmark import run_benchmark, summary_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--attributes", type=int, default=100)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=True)
    result = run_benchmark(
        items=args.items, dim=args.dim, attributes=args.attributes, queries=args.queries, k=args.k, log=console.print
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        Console().print(summary_table(result))


if __name__ == "__main__":
    main()
