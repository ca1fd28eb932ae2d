"""Encodings of sparse gradients for top-k compression: positions as a bitmap, values as float32,
float16 or an 8-bit logarithmic code. Every encoding is decoded identically on every rank, so the
sender knows exactly what the others will add (error feedback keeps the difference)."""

from __future__ import annotations

import math

from .. import dtype as dt
from ..creation import tensor, zeros
from ..ops import cat
from ..tensor import Tensor

_BITS: Tensor | None = None


def _bits() -> Tensor:
    global _BITS
    if _BITS is None:
        _BITS = tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=dt.int32)
    return _BITS


def pack_bits(mask: Tensor) -> Tensor:
    """A bool vector (n,) as uint8 (ceil(n/8),), bit j of byte i holding mask[8i + j]."""
    pad = -mask.numel() % 8
    if pad:
        mask = cat([mask, zeros(pad, dtype=dt.bool_)])
    return (mask.reshape(-1, 8).to(dt.int32) * _bits()).sum(1).to(dt.uint8).contiguous()


def unpack_bits(packed: Tensor, n: int) -> Tensor:
    """Inverse of pack_bits: uint8 (ceil(n/8),) -> bool (n,)."""
    return ((packed.to(dt.int32).reshape(-1, 1) // _bits()) % 2).reshape(-1)[:n].to(dt.bool_)


class ValueCodec:
    """How kept values travel: `encode(vals)` -> (payload tensors, decoded values) for 1-D float32
    vals of length k, and `decode(payloads, k)` -> decoded values (R, k) from the payloads of R ranks,
    each reshaped to (R, -1). A payload costs k * per_value + overhead bytes."""

    per_value = 4
    overhead = 0

    def encode(self, vals: Tensor) -> tuple[list, Tensor]:
        p = vals.contiguous()
        return [p], p

    def decode(self, payloads: list, k: int) -> Tensor:
        return payloads[0]


class Float16Codec(ValueCodec):
    """float16 values (clamped to its range): 2 bytes each, ~3 significant digits."""

    per_value = 2

    def encode(self, vals: Tensor) -> tuple[list, Tensor]:
        p = vals.clamp(-65504.0, 65504.0).to(dt.float16).contiguous()
        return [p], self.decode([p], p.numel())

    def decode(self, payloads: list, k: int) -> Tensor:
        return payloads[0].to(dt.float32)


class Log8Codec(ValueCodec):
    """One byte per value: the sign in the top bit and c = round(8 log2(s / |x|)) in 0..127 below
    it, s = max |x| sent once as float32; decoded |x| = s 2^(-c/8) (relative error <= 4.4% over
    16 octaves below the largest value)."""

    per_value = 1
    overhead = 4
    STEPS = 8  # codes per octave

    def encode(self, vals: Tensor) -> tuple[list, Tensor]:
        a = vals.abs()
        s = a.amax().reshape(1).contiguous()
        octaves = (s / a.clamp(min=1e-38)).clamp(min=1.0).log() / math.log(2)
        c = (octaves * self.STEPS).round().clamp(0, 127)
        code = (c + (vals < 0).to(dt.float32) * 128).to(dt.uint8).contiguous()
        return [code, s], self.decode([code.reshape(1, -1), s.reshape(1, 1)], code.numel()).reshape(-1)

    def decode(self, payloads: list, k: int) -> Tensor:
        code, s = payloads  # (R, k) codes of R ranks and their (R, 1) scales
        c = code.to(dt.float32)
        neg = (c >= 128).to(dt.float32)
        mag = (-(c - neg * 128) * (math.log(2) / self.STEPS)).exp() * s
        return mag * (1 - 2 * neg)


CODECS = {"float32": ValueCodec(), "float16": Float16Codec(), "log8": Log8Codec()}
