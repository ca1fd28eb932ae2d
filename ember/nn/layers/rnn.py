"""Recurrent layers: LSTM and GRU (multi-layer, optionally bidirectional), LSTMCell and GRUCell.

Parameter names, shapes and gate order match PyTorch (weight_ih_l0 (4H, I) with gates i, f, g, o
for LSTM; r, z, n for GRU), so state dicts load from torch. Each layer computes the input
projection of all time steps with one matmul, then loops over time with one matmul per step.
"""

from __future__ import annotations

import math

from ... import ops
from ...creation import zeros
from ...errors import ShapeError
from ...ops.movement import cat, stack
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ._util import new_param


def _time_steps(x: Tensor) -> list:
    """x: (T, ...) -> the T slices x[t].

    Split in halves recursively rather than slicing T times: each slice's backward scatters into a
    zero tensor the size of what it was cut from, so halving keeps that at O(T log T) work, not O(T^2).
    """
    n = x.shape[0]
    if n <= 2:
        return [x[i] for i in range(n)]
    half = n // 2
    return _time_steps(x[:half]) + _time_steps(x[half:])


def _lstm_direction(xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, reverse: bool):
    """One direction of one LSTM layer. xw: (T, B, 4H) input projections with both biases folded in;
    h, c: (B, H). Returns outputs (T, B, H), h_T, c_T."""
    steps = _time_steps(xw)
    w_hh_t = w_hh.t()
    outs = [None] * len(steps)
    for t in (reversed(range(len(steps))) if reverse else range(len(steps))):
        gates = steps[t] + h @ w_hh_t
        i, f, g, o = gates.chunk(4, 1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        outs[t] = h
    return stack(outs, 0), h, c


def _gru_direction(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, reverse: bool):
    """One direction of one GRU layer. xw: (T, B, 3H) input projections with b_ih folded in; h: (B, H).
    n = tanh(x_n + r * (h W_hn^T + b_hn)); h' = (1 - z) * n + z * h."""
    steps = _time_steps(xw)
    w_hh_t = w_hh.t()
    outs = [None] * len(steps)
    for t in (reversed(range(len(steps))) if reverse else range(len(steps))):
        hw = h @ w_hh_t
        if b_hh is not None:
            hw = hw + b_hh
        x_r, x_z, x_n = steps[t].chunk(3, 1)
        h_r, h_z, h_n = hw.chunk(3, 1)
        r = ops.sigmoid(x_r + h_r)
        z = ops.sigmoid(x_z + h_z)
        n = ops.tanh(x_n + r * h_n)
        h = n + z * (h - n)
        outs[t] = h
    return stack(outs, 0), h


class RNNBase(Module):
    """Shared construction and the layer/direction loop of LSTM and GRU."""

    mode = ""
    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if proj_size:
            raise NotImplementedError(f"{name}: proj_size is not supported")
        if not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in [0, 1], got {dropout}")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"{name}: hidden_size and num_layers must be positive, got {hidden_size}, "
                             f"{num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        dirs = 2 if bidirectional else 1
        g = self._gates * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else hidden_size * dirs
                names = [("weight_ih" + sfx, (g, in_size)), ("weight_hh" + sfx, (g, hidden_size))]
                if bias:
                    names += [("bias_ih" + sfx, (g,)), ("bias_hh" + sfx, (g,))]
                for n, shape in names:
                    setattr(self, n, new_param(*shape, dtype=dtype, device=device))
                    self._flat_weights_names.append(n)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _weights(self, layer: int, d: int):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        get = lambda n: getattr(self, n + sfx) if self.bias or n.startswith("weight") else None
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _check_input(self, input: Tensor, hx, name: str) -> tuple[Tensor, bool]:
        if input.ndim not in (2, 3):
            raise ShapeError(f"{name}: expected input of 2 (unbatched) or 3 dims, got shape "
                             f"{tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {input.shape[-1]} features in its last dim, expected "
                             f"input_size={self.input_size} (input shape {tuple(input.shape)})")
        batched = input.ndim == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        return input, batched

    def _initial(self, hx: Tensor | None, batch: int, like: Tensor, batched: bool, what: str) -> Tensor:
        dirs = 2 if self.bidirectional else 1
        expected = (self.num_layers * dirs, batch, self.hidden_size)
        if hx is None:
            return zeros(*expected, dtype=like.dtype, device=like.device)
        if not batched:
            if hx.ndim != 2:
                raise ShapeError(f"{type(self).__name__}: for unbatched input, {what} should be 2-D, got "
                                 "shape "
                                 f"{tuple(hx.shape)}")
            hx = hx.unsqueeze(1)
        if tuple(hx.shape) != expected:
            raise ShapeError(f"{type(self).__name__}: expected {what} of shape {expected} (num_layers * "
                             f"num_directions, batch, hidden_size), got {tuple(hx.shape)}")
        return hx

    def _run(self, x: Tensor, states: list, direction_fn):
        """x: (T, B, I); states: (L*D, B, H) tensors (h, and c for LSTM).
        Returns the output (T, B, D*H) and the final states."""
        T, B = x.shape[0], x.shape[1]
        dirs = 2 if self.bidirectional else 1
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, d)
                xw = (x.reshape(T * B, x.shape[2]) @ w_ih.t())
                bias = self._input_bias(b_ih, b_hh)
                if bias is not None:
                    xw = xw + bias
                xw = xw.reshape(T, B, w_ih.shape[0])
                idx = layer * dirs + d
                out, *last = direction_fn(xw, [s[idx] for s in states], w_hh, b_hh, d == 1)
                outs.append(out)
                for f, s in zip(finals, last):
                    f.append(s)
            x = outs[0] if dirs == 1 else cat(outs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, [stack(f, 0) for f in finals]

    def _input_bias(self, b_ih, b_hh):
        raise NotImplementedError(f"{type(self).__name__} must say how its two biases enter the input projection")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber, 1997), PyTorch's formulation.

    input: (T, B, I) ((B, T, I) if batch_first; (T, I) unbatched); hx: optional (h0, c0), each
    (num_layers * num_directions, B, H). Returns output (T, B, D*H) and (h_n, c_n).
    """

    mode = "LSTM"
    _gates = 4

    def _input_bias(self, b_ih, b_hh):
        return None if b_ih is None else b_ih + b_hh

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        x, batched = self._check_input(input, hx, "LSTM")
        h0, c0 = (None, None) if hx is None else hx
        B = x.shape[1]
        h0 = self._initial(h0, B, x, batched, "h0")
        c0 = self._initial(c0, B, x, batched, "c0")

        def step(xw, state, w_hh, b_hh, reverse):
            return _lstm_direction(xw, state[0], state[1], w_hh, reverse)
        out, (h_n, c_n) = self._run(x, [h0, c0], step)
        if not batched:
            return out.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al., 2014), PyTorch's formulation.

    input: (T, B, I) ((B, T, I) if batch_first; (T, I) unbatched); hx: optional h0
    (num_layers * num_directions, B, H). Returns output (T, B, D*H) and h_n.
    """

    mode = "GRU"
    _gates = 3

    def _input_bias(self, b_ih, b_hh):
        return b_ih  # b_hh sits inside r * (...), so it stays in the step

    def forward(self, input: Tensor, hx: Tensor | None = None):
        x, batched = self._check_input(input, hx, "GRU")
        h0 = self._initial(hx, x.shape[1], x, batched, "h0")

        def step(xw, state, w_hh, b_hh, reverse):
            return _gru_direction(xw, state[0], w_hh, b_hh, reverse)
        out, (h_n,) = self._run(x, [h0], step)
        if not batched:
            return out.squeeze(1), h_n.squeeze(1)
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, h_n


class _CellBase(Module):
    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = self._gates * hidden_size
        self.weight_ih = new_param(g, input_size, dtype=dtype, device=device)
        self.weight_hh = new_param(g, hidden_size, dtype=dtype, device=device)
        if bias:
            self.bias_ih = new_param(g, dtype=dtype, device=device)
            self.bias_hh = new_param(g, dtype=dtype, device=device)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def _prep(self, input: Tensor, hx, n_states: int):
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
        if hx is None:
            z = zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device)
            hx = (z,) * n_states
        else:
            hx = tuple(h if batched else h.unsqueeze(0) for h in (hx if n_states > 1 else (hx,)))
        xw = input @ self.weight_ih.t()
        if self.bias_ih is not None:
            xw = xw + self.bias_ih
        return xw.unsqueeze(0), hx, batched

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class LSTMCell(_CellBase):
    """One LSTM step: input (B, I), hx optional (h, c) each (B, H) -> (h', c')."""

    _gates = 4

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None):
        xw, (h, c), batched = self._prep(input, hx, 2)
        if self.bias_hh is not None:
            xw = xw + self.bias_hh
        _, h, c = _lstm_direction(xw, h, c, self.weight_hh, False)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_CellBase):
    """One GRU step: input (B, I), hx optional (B, H) -> h'."""

    _gates = 3

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        xw, (h,), batched = self._prep(input, hx, 1)
        _, h = _gru_direction(xw, h, self.weight_hh, self.bias_hh, False)
        return h if batched else h.squeeze(0)
