"""GPT decoder in the style of nanoGPT (workload W3 of BENCHMARKS.md).

Pre-LayerNorm blocks, causal scaled-dot-product attention, GELU (tanh) MLP 4x, learned positions,
init N(0, 0.02) with std / sqrt(2 * n_layer) on the residual projections (GPT-2 paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import nn
from ..creation import arange
from ..nn import functional as F
from ..random import Generator
from ..tensor import Tensor
from ._config import check_bool, check_int, check_prob
from .sampling import generate as _generate


@dataclass(frozen=True)
class GPTConfig:
    """The defaults are W3: vocab 65, 4 layers, 4 heads, 128 wide, context 128, untied (826,368 params)."""

    vocab_size: int = 65
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = False

    def __post_init__(self):
        for f in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_int(self, f)
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by "
                             f"GPTConfig.n_head ({self.n_head})")
        check_prob(self, "dropout")
        check_bool(self, "bias")
        check_bool(self, "tie_weights")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal mask: (B, T, C) -> (B, T, C)."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = c.n_head, c.n_embd, c.dropout
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.resid_dropout = nn.Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        q, k, v = (t.reshape(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class FeedForward(nn.Module):
    """Linear(C, 4C) - GELU(tanh) - Linear(4C, C) - dropout: (B, T, C) -> (B, T, C)."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, eps=1e-5, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, eps=1e-5, bias=c.bias)
        self.mlp = FeedForward(c)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """idx (B, T) int64 token ids, T <= block_size -> logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig | None = None):
        super().__init__()
        self.config = c = config or GPTConfig()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.vocab_size, c.n_embd),
            wpe=nn.Embedding(c.block_size, c.n_embd),
            drop=nn.Dropout(c.dropout),
            h=nn.ModuleList([Block(c) for _ in range(c.n_layer)]),
            ln_f=nn.LayerNorm(c.n_embd, eps=1e-5, bias=c.bias),
        ))
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_parameters(self, trainable_only: bool = False, non_embedding: bool = False) -> int:
        """Parameter count (shared tensors once); non_embedding leaves out the position table, as nanoGPT."""
        n = super().num_parameters(trainable_only)
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: Tensor) -> Tensor:
        """idx: (B, T) int64 -> logits (B, T, vocab_size)."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"GPT: sequence of length {T} is longer than block_size "
                             f"{self.config.block_size}; crop the context")
        pos = arange(T)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: Generator | None = None) -> Tensor:
        """idx (B, T) -> (B, T + max_new_tokens), sampling each token from the last position's logits.

        The context is cropped to block_size; temperature 0 is greedy. No KV cache here (ember.inference
        has one)."""
        return _generate(self, idx, max_new_tokens, self.config.block_size, temperature, top_k, generator)
