"""Benchmark: student labelling throughput vs the raw encoder and a SetFit-style baseline, same run.

    .venv/bin/python bench/label.py [--rows 200000] [--texts 1024] [--scale-rows 1000000] [--no-ray] [--json]

(a) stored embeddings, Parquet in and out (goal >= 11,600 videos/s = 10^9/day); (b) end to end with
MiniLM int8 text encoding, as a ratio of the raw encoder's throughput measured in the same run
(goal >= 0.9); the baseline is sentence-transformers fp32 + scikit-learn logistic-regression heads.
Local and Ray engines; peak memory of the labelling process tree at --scale-rows. Needs a trained
student (`vibeset silver` and `vibeset distill`). Same as `vibeset bench label`.
"""

import argparse
import json

from vibeset.distill.bench import run_label_bench
from vibeset.workspace import load_workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--scale-rows", type=int, default=0)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run_label_bench(load_workspace(), rows=args.rows, texts=args.texts, scale_rows=args.scale_rows, ray=not args.no_ray)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:40s} {value:,.3f}" if isinstance(value, float) else f"{key:40s} {value}")


if __name__ == "__main__":
    main()
