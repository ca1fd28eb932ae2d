"""LSTM language model: embedding -> multi-layer nn.LSTM -> linear head (optionally tied to the embedding)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import nn
from ..random import Generator
from ..tensor import Tensor
from ._config import check_bool, check_int, check_prob
from .sampling import generate as _generate


@dataclass(frozen=True)
class LSTMConfig:
    """block_size is the training context length, and the context generate() keeps."""

    vocab_size: int = 65
    n_embd: int = 128
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    block_size: int = 128
    tie_weights: bool = False

    def __post_init__(self):
        for f in ("vocab_size", "n_embd", "hidden_size", "num_layers", "block_size"):
            check_int(self, f)
        check_prob(self, "dropout")
        check_bool(self, "tie_weights")
        if self.tie_weights and self.n_embd != self.hidden_size:
            raise ValueError(f"LSTMConfig.tie_weights needs n_embd == hidden_size, got n_embd={self.n_embd} "
                             f"and hidden_size={self.hidden_size}")


class LSTMLM(nn.Module):
    """idx (B, T) int64 -> logits (B, T, vocab_size)."""

    def __init__(self, config: LSTMConfig | None = None):
        super().__init__()
        self.config = c = config or LSTMConfig()
        self.embedding = nn.Embedding(c.vocab_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.lstm = nn.LSTM(c.n_embd, c.hidden_size, num_layers=c.num_layers, batch_first=True,
                            dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embedding.weight

    def forward(self, idx: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """idx: (B, T) int64, hx: optional (h0, c0) each (num_layers, B, hidden) -> logits (B, T, V)."""
        out, _ = self.lstm(self.drop(self.embedding(idx)), hx)
        return self.head(self.drop(out))

    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: Generator | None = None) -> Tensor:
        """idx (B, T) -> (B, T + max_new_tokens); reruns the last block_size tokens each step."""
        return _generate(self, idx, max_new_tokens, self.config.block_size, temperature, top_k, generator)
