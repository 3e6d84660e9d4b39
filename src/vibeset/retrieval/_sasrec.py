"""The PyTorch side of the sequential ranker: the network, its training loop and the ONNX export.

Imported only to train (``SequentialModel.fit``): serving and evaluation run the exported graph.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn


class _Block(nn.Module):
    """Pre-norm causal self-attention and a feed-forward layer, each with a residual."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-1, -2)) / math.sqrt(dim // self.heads) + causal
        attended = (self.drop(weights.softmax(-1)) @ v).transpose(1, 2).reshape(batch, length, dim)
        x = x + self.drop(self.out(attended))
        return x + self.drop(self.ff(self.norm2(x)))


class SASRec(nn.Module):
    """Item + position embeddings, causal blocks, a final norm; item embeddings tied to the output."""

    def __init__(self, items: int, dim: int, max_len: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.items = nn.Embedding(items, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("causal", torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1))
        with torch.no_grad():
            nn.init.normal_(self.items.weight, std=dim**-0.5)
            self.items.weight[0].zero_()  # padding (and unknown videos) stay the zero vector

    def hidden(self, seq: torch.Tensor) -> torch.Tensor:
        length = seq.shape[1]
        x = self.items(seq) + self.positions.weight[:length]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, self.causal[:length, :length])
        return self.norm(x)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """The state at each sequence's last real item (sequences are right-padded with 0)."""
        last = (seq != 0).sum(1).clamp(min=1) - 1
        states = self.hidden(seq)
        return states[torch.arange(seq.shape[0]), last]


def windows(sequences: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Right-padded windows of ``max_len + 1`` items cut from the end of every sequence of >= 2 items."""
    out = []
    for seq in sequences:
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_len - 1)
            window = np.zeros(max_len + 1, dtype=np.int64)
            window[: end - start] = seq[start:end]
            out.append(window)
            end = start + 1 if start > 0 else 0
    return np.stack(out)


def train(sequences: Sequence[np.ndarray], items: int, settings: Any, *, threads: int = 2) -> tuple[SASRec, list[float]]:
    """Full-softmax next-item training on each user's latest ``settings.history`` interactions;
    returns the network (in eval mode) and the mean loss per epoch."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(settings.seed)
    data = torch.from_numpy(windows([seq[-settings.history :] for seq in sequences], settings.max_len))
    network = SASRec(items, settings.dim, settings.max_len, settings.layers, settings.heads, settings.dropout)
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.lr, weight_decay=0.01)
    steps = settings.epochs * math.ceil(len(data) / settings.batch)
    # one cycle needs a few steps to warm up and anneal; a tiny run (one epoch, few users) keeps a flat rate
    schedule = (torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.lr, total_steps=steps, pct_start=max(0.1, 2.0 / steps))
                if steps >= 4 else None)
    losses = []
    network.train()
    for _ in range(settings.epochs):
        total, count = 0.0, 0
        for batch in torch.from_numpy(rng.permutation(len(data))).split(settings.batch):
            window = data[batch]
            inputs, targets = window[:, :-1], window[:, 1:]
            keep = targets != 0
            states, wanted = network.hidden(inputs)[keep], targets[keep]
            loss = nn.functional.cross_entropy(states @ network.items.weight[1:].T, wanted - 1)  # padding is no class
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if schedule is not None:
                schedule.step()
            total, count = total + float(loss.detach()) * len(wanted), count + len(wanted)
        losses.append(total / max(count, 1))
    network.eval()
    return network, losses


def export_onnx(network: SASRec, max_len: int) -> bytes:
    """The state graph: ``items`` (users, max_len) int64 -> ``state`` (users, dim) float32."""
    buffer = io.BytesIO()
    example = torch.zeros((2, max_len), dtype=torch.int64)
    example[:, :3] = 1
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it keeps constant (all but the batch are)
        torch.onnx.export(network, (example,), buffer, input_names=["items"], output_names=["state"],
                          dynamic_axes={"items": {0: "users"}, "state": {0: "users"}}, opset_version=17, dynamo=False)
    return buffer.getvalue()
