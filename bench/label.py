"""Benchmark: student labelling throughput vs the raw encoder and a SetFit-style baseline, same run.

    .venv/bin/python bench/label.py [--rows 200000] [--texts 1024] [--repeats 3] [--scale-rows 1000000] [--no-ray] [--json]

(a) stored embeddings, Parquet in and out (goal >= 11,600 videos/s = 10^9/day); (b) the MiniLM paths
(fp32 ONNX, int8 ONNX, torch) on the same texts with their cosine to fp32, and end to end with the
student's encoder, as a ratio of that encoder alone (goal >= 0.9) and of the SetFit-style baseline,
sentence-transformers fp32 + scikit-learn logistic-regression heads (goal >= 1.0); medians of
--repeats runs taken in turn, with the load average. Local and Ray engines; peak memory of the
labelling process tree at --scale-rows. Needs a trained student (`vibeset run`). Same as
`vibeset bench label`.
"""

import argparse
import json

from vibeset.scale.bench import run_label_bench
from vibeset.workspace import load_workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale-rows", type=int, default=0)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run_label_bench(load_workspace(), rows=args.rows, texts=args.texts, repeats=args.repeats,
                             scale_rows=args.scale_rows, ray=not args.no_ray)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:40s} {value:,.3f}" if isinstance(value, float) else f"{key:40s} {value}")


if __name__ == "__main__":
    main()
