"""Autoregressive sampling shared by the language models (no KV cache: each step reruns the context)."""

from __future__ import annotations

import math

from ..autograd import no_grad
from ..creation import rand
from ..ops.movement import cat
from ..random import Generator
from ..tensor import Tensor


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row, set the rest to -inf. logits: (B, V) -> (B, V).

    Found by k rounds of max-and-mask (V is small for these models); ties at the k-th value are all kept."""
    k = min(int(k), logits.shape[-1])
    v = logits
    for _ in range(k - 1):
        v = v.masked_fill(v >= v.amax(dim=-1, keepdim=True), -math.inf)
    kth = v.amax(dim=-1, keepdim=True)
    return logits.masked_fill(logits < kth, -math.inf)


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: Generator | None = None) -> Tensor:
    """Draw one token per row from logits (B, V) -> (B, 1) int64.

    temperature == 0 picks the argmax (greedy; ember-specific convenience). Sampling inverts the CDF
    with one uniform draw per row from `generator` (the default generator if None)."""
    if temperature < 0:
        raise ValueError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    probs = (logits - logits.logsumexp(dim=-1, keepdim=True)).exp()
    cdf = probs.cumsum(dim=-1)
    u = rand(logits.shape[0], 1, generator=generator) * cdf[:, -1:]
    idx = (cdf <= u).long().sum(dim=-1, keepdim=True)
    # a token with zero probability can never be chosen: clamp guards the u == total edge
    return idx.clamp(max=logits.shape[-1] - 1)


def generate(model, idx: Tensor, max_new_tokens: int, block_size: int, temperature: float = 1.0,
             top_k: int | None = None, generator: Generator | None = None) -> Tensor:
    """Extend idx (B, T) int64 by max_new_tokens sampled tokens -> (B, T + max_new_tokens).

    `model(idx)` must return logits (B, T, V); the context is cropped to the last `block_size` tokens."""
    if idx.ndim != 2:
        raise ValueError(f"generate: idx must be (B, T) token ids, got shape {tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for _ in range(max_new_tokens):
                ctx = idx if idx.shape[1] <= block_size else idx[:, -block_size:]
                logits = model(ctx)[:, -1, :]
                idx = cat([idx, sample_next(logits, temperature, top_k, generator).to(idx.dtype)], dim=1)
    finally:
        model.train(was_training)
    return idx
