"""Activation checkpointing: keep a block's inputs, not its activations, and recompute in backward.

`checkpoint(fn, *args)` runs `fn` once, notes which tensors from outside the block its result
depends on (explicit inputs, and parameters or activations it closes over), then drops the
block's graph. Backward restores the random state of the forward (dropout masks match),
reruns `fn` with recording on and propagates the output gradients back to those tensors only.
"""

from __future__ import annotations

import contextlib
import sys

from .autograd import AccumulateGrad, _edge, _Mode, _raise_version_error, _run_engine, _seq, enable_grad
from .function import Function, _SlotNode
from .random import default_generator
from .tensor import Tensor


class _State:
    __slots__ = ("function", "args", "kwargs", "rng", "autocast", "outs", "kind", "inputs", "versions")


def _autocast_dtype():
    # ember.amp sits above this layer: consult it only if the program loaded it
    amp = sys.modules.get("ember.amp")
    return None if amp is None else amp.get_autocast_dtype()


def _autocast_as(dtype):
    """Recompute under the autocast setting the forward saw (off if it was off)."""
    amp = sys.modules.get("ember.amp")
    if amp is None:
        return contextlib.nullcontext()
    return amp.autocast("cpu", dtype=dtype, enabled=True) if dtype is not None else \
        amp.autocast("cpu", enabled=False)


def _flatten(out) -> tuple[list, str]:
    if isinstance(out, tuple):
        return list(out), "tuple"
    if isinstance(out, list):
        return list(out), "list"
    return [out], "single"


def _external_inputs(outs: list, first_seq: int) -> list:
    """Tensors made before the block (seq <= first_seq) that the block's outputs depend on."""
    found: dict = {}  # edge -> tensor
    stack = []

    def visit(edge, t):
        seq = edge.function.seq if edge.__class__ is _SlotNode else edge.seq
        if edge.__class__ is AccumulateGrad or seq <= first_seq:
            found.setdefault(edge, t)
        else:
            stack.append(edge)

    for o in outs:
        if isinstance(o, Tensor) and o.requires_grad:
            visit(_edge(o), o)
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.__class__ is _SlotNode:
            stack.append(node.function)
            continue
        for p, t in zip(node.parents, node.inputs):
            if p is not None:
                visit(p, t)
    return list(found.values())


class _Checkpoint(Function):
    """The recorded step: its inputs are what the block reads from outside; backward recomputes."""

    @staticmethod
    def forward(ctx, state, non_diff, *inputs):
        ctx.state = state
        ctx.mark_non_differentiable(*non_diff)
        outs, state.outs = state.outs, None  # the block's graph dies with these references
        return outs[0] if state.kind == "single" else tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        st = ctx.state
        if any(t._vc[0] != v for t, v in zip(st.inputs, st.versions)):
            _raise_version_error("Checkpoint", st.inputs, st.versions)
        create_graph = _Mode.enabled  # the engine runs backward with recording == create_graph
        with enable_grad(), _autocast_as(st.autocast):
            current = None
            if st.rng is not None:
                current = default_generator.get_state()
                default_generator.set_state(st.rng)
            try:
                outs, _ = _flatten(st.function(*st.args, **st.kwargs))
            finally:
                if current is not None:
                    default_generator.set_state(current)
        roots, seeds = [], []
        for o, g in zip(outs, grads):
            if isinstance(o, Tensor) and o.requires_grad and g is not None:
                roots.append(o)
                seeds.append(g)
        targets: dict = {}  # edge -> slot in the engine's results
        owner = []  # slot -> index into st.inputs
        for i, t in enumerate(st.inputs):
            e = _edge(t)
            if e is not None and e not in targets:
                targets[e] = len(owner)
                owner.append(i)
        got = [None] * len(st.inputs)
        if roots and targets:
            # stop at the block's boundary: the outer engine carries the gradients on from there
            res = _run_engine(roots, seeds, create_graph, create_graph, targets, stop_at_targets=True)
            for slot, i in enumerate(owner):
                got[i] = res[slot]
        return (None, None, *got)


def checkpoint(function, *args, use_reentrant: bool | None = None, preserve_rng_state: bool = True,
               **kwargs):
    """`function(*args, **kwargs)` without keeping its activations for backward.

    Memory for the block drops to its inputs; backward pays one extra forward of `function`.
    Gradients equal those of the plain call, for explicit inputs and for parameters or tensors
    `function` closes over (PyTorch's `use_reentrant=False` semantics; ember has no reentrant
    variant, so `use_reentrant` is accepted and ignored). With `preserve_rng_state` the
    recomputation draws the same random numbers (dropout) as the forward did from ember's
    default generator; it also runs under the forward's autocast setting. `function` must
    compute the same thing when run again.
    """
    del use_reentrant
    if not _Mode.enabled:
        return function(*args, **kwargs)
    rng = default_generator.get_state() if preserve_rng_state else None
    autocast_dtype = _autocast_dtype()
    first_seq = next(_seq)  # every node `function` records has a larger seq
    out = function(*args, **kwargs)
    outs, kind = _flatten(out)
    external = _external_inputs(outs, first_seq)
    if not external:
        return out  # nothing inside needs a gradient: there is no graph to drop
    # the node also holds the explicit tensor arguments: recomputation needs them
    inputs, ids = [], set()
    for t in [a for a in args if isinstance(a, Tensor)] + external:
        if id(t) not in ids:
            ids.add(id(t))
            inputs.append(t)
    st = _State()
    st.function, st.args, st.kwargs, st.rng, st.outs, st.kind = function, args, kwargs, rng, outs, kind
    st.autocast = autocast_dtype
    st.inputs, st.versions = inputs, [t._vc[0] for t in inputs]
    non_diff = [o for o in outs if isinstance(o, Tensor) and not o.requires_grad]
    res = _Checkpoint.apply(st, non_diff, *inputs)
    return list(res) if kind == "list" else res


__all__ = ["checkpoint"]
