"""The student network: a multi-label MLP over feature groups, trained on soft labels, exported to ONNX.

This is the only module that imports torch; serving and bulk labelling read the ONNX file
with onnxruntime. Inputs are standardised inside the graph (train mean/std as constants),
so callers pass raw feature blocks. During training the text block is dropped for a share
of rows (``text_dropout``): the net must also predict the teacher from tags and viewing
behaviour alone, which averages the teacher's per-video noise over similar videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..errors import DataError


@dataclass
class TrainConfig:
    """Hyper-parameters of one student fit (stored in the student's lineage); ``hidden = 0`` is a linear layer."""

    hidden: int = 128
    dropout: float = 0.2
    text_dropout: float = 0.3
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    max_epochs: int = 80
    patience: int = 5
    confidence_floor: float = 0.1
    seed: int = 0
    threads: int = 1  # small matrices: one thread beats two on a shared box

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TrainResult:
    epochs: int
    best_epoch: int
    train_loss: list[float] = field(default_factory=list)
    heldout_loss: list[float] = field(default_factory=list)


def confidence_weights(soft: np.ndarray, mask: np.ndarray, floor: float) -> np.ndarray:
    """|2p - 1| floored: a teacher that says 0.5 teaches little; missing labels weigh 0."""
    return np.where(mask, np.maximum(np.abs(2.0 * soft - 1.0), floor), 0.0).astype(np.float32)


def _network(groups: list[str], widths: Mapping[str, int], stats: Mapping[str, tuple[np.ndarray, np.ndarray]], outputs: int, config: TrainConfig):
    import torch
    from torch import nn

    class StudentMLP(nn.Module):
        """Standardise each group, concatenate, two hidden layers, one logit per attribute."""

        def __init__(self) -> None:
            super().__init__()
            self.groups = list(groups)
            for group in groups:
                mean, std = stats[group]
                self.register_buffer(f"mean_{group}", torch.from_numpy(mean.astype(np.float32)))
                self.register_buffer(f"std_{group}", torch.from_numpy(std.astype(np.float32)))
            width = sum(widths[g] for g in groups)
            self.body = nn.Sequential(nn.Linear(width, outputs)) if not config.hidden else nn.Sequential(
                nn.Linear(width, config.hidden),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden, config.hidden // 2),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden // 2, outputs),
            )

        def forward(self, *blocks: "torch.Tensor", text_keep: "torch.Tensor | None" = None) -> "torch.Tensor":
            parts = []
            for group, block in zip(self.groups, blocks):
                z = (block - getattr(self, f"mean_{group}")) / getattr(self, f"std_{group}")
                if group == "text" and text_keep is not None:
                    z = z * text_keep
                parts.append(z)
            return self.body(torch.cat(parts, dim=1))

    return StudentMLP()


def linear_module(groups: list[str], mean: Mapping[str, np.ndarray], std: Mapping[str, np.ndarray], weight: np.ndarray,
                  bias: np.ndarray):
    """A fitted linear student (``distill.linear``) as a module of the same shape as the MLP (hidden = 0), for export."""
    import torch

    widths = {g: len(mean[g]) for g in groups}
    net = _network(groups, widths, {g: (mean[g], std[g]) for g in groups}, weight.shape[1], TrainConfig(hidden=0))
    with torch.no_grad():
        net.body[0].weight.copy_(torch.from_numpy(np.ascontiguousarray(weight.T, dtype=np.float32)))
        net.body[0].bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
    return net.eval()


def standardisation(blocks: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {g: (b.mean(axis=0), np.maximum(b.std(axis=0), 1e-3)) for g, b in blocks.items()}


def train(
    blocks: Mapping[str, np.ndarray],
    soft: np.ndarray,
    mask: np.ndarray,
    heldout: np.ndarray,
    config: TrainConfig,
    progress: Callable[[int, float], None] | None = None,
):
    """Fit on rows where ``heldout`` is False; early-stop on the weighted BCE of the held-out rows.

    ``soft``: teacher scores (n, A) in [0, 1]; ``mask``: which of them exist. Returns the
    best module (eval mode) and a ``TrainResult``.
    """
    import torch

    groups = list(blocks)
    n = soft.shape[0]
    for group, block in blocks.items():
        if block.shape[0] != n:
            raise DataError(f"feature group {group!r} has {block.shape[0]} rows, soft labels have {n}")
    if heldout.all() or not heldout.any():
        raise DataError(f"held-out silver must be a proper subset; got {int(heldout.sum())} of {n} rows")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_rows = np.flatnonzero(~heldout)
    stats = standardisation({g: b[train_rows] for g, b in blocks.items()})
    widths = {g: b.shape[1] for g, b in blocks.items()}
    net = _network(groups, widths, stats, soft.shape[1], config)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    tensors = [torch.from_numpy(np.ascontiguousarray(blocks[g], dtype=np.float32)) for g in groups]
    target = torch.from_numpy(np.clip(soft, 0.0, 1.0).astype(np.float32))
    weight = torch.from_numpy(confidence_weights(soft, mask, config.confidence_floor))
    held = torch.from_numpy(np.flatnonzero(heldout))
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def heldout_loss() -> float:
        net.eval()
        with torch.no_grad():
            logits = net(*[t[held] for t in tensors])
            loss = bce(logits, target[held], weight=weight[held], reduction="sum") / weight[held].sum().clamp(min=1e-6)
        return float(loss)

    result = TrainResult(epochs=0, best_epoch=0)
    best, best_state, stale = float("inf"), None, 0
    for epoch in range(config.max_epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(train_rows))
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            keep = (torch.rand(len(rows), 1) >= config.text_dropout).float() if config.text_dropout else None
            logits = net(*[t[rows] for t in tensors], text_keep=keep)
            loss = bce(logits, target[rows], weight=weight[rows], reduction="sum") / weight[rows].sum().clamp(min=1e-6)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(rows)
        result.train_loss.append(total / len(train_rows))
        result.heldout_loss.append(heldout_loss())
        result.epochs = epoch + 1
        if progress:
            progress(epoch + 1, result.heldout_loss[-1])
        if result.heldout_loss[-1] < best - 1e-5:
            best, stale, result.best_epoch = result.heldout_loss[-1], 0, epoch + 1
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return net, result


def torch_logits(net, blocks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Logits of a trained module (reference for the ONNX parity check)."""
    import torch

    with torch.no_grad():
        return net(*[torch.from_numpy(np.ascontiguousarray(blocks[g], dtype=np.float32)) for g in net.groups]).numpy()


def export_onnx(net, widths: Mapping[str, int], path: str | Path) -> Path:
    """ONNX with one float32 input per feature group (dynamic batch) and output ``logits``.

    Uses the TorchScript-based exporter (``dynamo=False``): it needs no onnxscript and the
    graph is a plain MLP.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = tuple(torch.zeros(2, widths[g]) for g in net.groups)
    axes = {g: {0: "batch"} for g in net.groups} | {"logits": {0: "batch"}}
    torch.onnx.export(
        net,
        example,
        str(path),
        input_names=list(net.groups),
        output_names=["logits"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    return path
