"""Reverse-mode autodiff: grad modes, the dispatcher that records the tape, and the engine.

`apply(op, *inputs, **attrs)` runs an op's kernel and, when grad mode is on and an input
requires grad, links the output to a `Node`. `backward` walks the nodes in reverse
creation order calling each op's backward rule, which is itself written with ember ops,
so with `create_graph=True` the backward pass is recorded too (higher-order gradients).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import weakref

from .devices import backend
from .errors import AutogradError, DeviceError, EmberError, ShapeError, fmt_shape
from .tensor import Tensor

# --- grad mode: the one piece of global autograd state ---------------------------------------


class _Mode:
    enabled = True
    inference = False


class _GradModeContext:
    """Base of no_grad / enable_grad / inference_mode: a context manager and a decorator."""

    _value = True
    _inference = False

    def __enter__(self):
        self._prev = (_Mode.enabled, _Mode.inference)
        _Mode.enabled = self._value
        _Mode.inference = self._inference

    def __exit__(self, *exc):
        _Mode.enabled, _Mode.inference = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    """Record nothing: ops inside produce tensors without history."""

    _value = False


class enable_grad(_GradModeContext):
    """Record again inside a no_grad region."""

    _value = True


class inference_mode(_GradModeContext):
    """Like no_grad (ember keeps no extra inference-only fast path beyond that)."""

    _value = False
    _inference = True

    def __init__(self, mode: bool = True):
        self._value = not mode
        self._inference = mode


class set_grad_enabled(_GradModeContext):
    """`set_grad_enabled(False)` as a context manager (or called plainly, sets the mode)."""

    def __init__(self, mode: bool):
        self._value = bool(mode)
        self._prev = (_Mode.enabled, _Mode.inference)
        _Mode.enabled = self._value

    def __enter__(self):
        pass


def is_grad_enabled() -> bool:
    return _Mode.enabled


def is_inference_mode_enabled() -> bool:
    return _Mode.inference


# --- the tape ----------------------------------------------------------------------------------

_seq = itertools.count()


class Node:
    """One recorded op: its inputs, attributes and output, and the edges the engine follows.

    Backward rules receive the node as `ctx`: `ctx.inputs`, `ctx.out`, `ctx.saved` (extra
    buffers the kernel chose to keep) and the op's attributes as `ctx.<name>`.
    """

    __slots__ = ("op", "inputs", "attrs", "saved", "_out", "parents", "versions", "seq", "hooks",
                 "__weakref__")

    def __init__(self, op, inputs, attrs, out, saved=None):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.saved = saved
        self._out = weakref.ref(out)
        self.parents = tuple(_edge(t) for t in inputs)
        self.versions = tuple(t._vc[0] for t in inputs)
        self.seq = next(_seq)
        self.hooks = []

    @property
    def name(self) -> str:
        return self.op.name.title().replace("_", "")

    def __getattr__(self, key):
        try:
            return self.attrs[key]
        except (KeyError, TypeError):
            raise AttributeError(key) from None

    @property
    def out(self) -> Tensor:
        """The op's output (recomputed if nothing holds it any more)."""
        o = self._out()
        if o is None:
            o = apply(self.op, *self.inputs, **self.attrs)
        return o

    def run(self, g: Tensor) -> tuple:
        if self.inputs is None:
            raise AutogradError(
                f"{self.op.name}: trying to backward through the graph a second time (its saved "
                "tensors were freed after the first backward). Pass retain_graph=True to the first "
                "backward() if you need to backward twice.")
        for i, t in enumerate(self.inputs):
            if t._vc[0] != self.versions[i]:
                raise AutogradError(
                    f"{self.op.name}: one of the tensors needed for gradient computation has been "
                    f"modified by an in-place operation: input {i} of shape {fmt_shape(t.shape)} is at "
                    f"version {t._vc[0]}, expected version {self.versions[i]}. Hint: replace the "
                    "in-place op (add_, mul_, x[...] = ...) with its out-of-place form.")
        grads = self.op.backward(self, g)
        if not isinstance(grads, tuple):
            grads = (grads,)
        return grads

    def release(self) -> None:
        self.inputs = None
        self.saved = None


class AccumulateGrad:
    """The sink for a leaf tensor: adds incoming gradients into `.grad`, then runs its hooks."""

    __slots__ = ("variable", "seq", "parents", "__weakref__")
    name = "AccumulateGrad"

    def __init__(self, variable: Tensor):
        self.variable = variable
        self.seq = float("inf")  # run as soon as ready, so hooks fire early (DDP overlap)
        self.parents = ()


def _edge(t: Tensor):
    """Where gradient for `t` flows: its grad_fn, its leaf accumulator, or nowhere."""
    if t.grad_fn is not None:
        return t.grad_fn
    if not t.requires_grad:
        return None
    acc = t._acc() if t._acc is not None else None
    if acc is None:
        acc = AccumulateGrad(t)
        t._acc = weakref.ref(acc)
    return acc


# --- dispatch ----------------------------------------------------------------------------------


def apply(op, *inputs: Tensor, **attrs) -> Tensor:
    """Run `op` eagerly on tensors and record it for autograd. All inputs share one device."""
    dev = inputs[0].device
    for t in inputs:
        if t.device is not dev and t.device != dev:
            raise DeviceError(f"{op.name}: expected all tensors on one device, got {dev} and {t.device}. "
                              f"Hint: move them with .to('{dev}')")
    be = backend(dev)
    out_dtype = op.dtype(*inputs, **attrs) if op.dtype is not None else inputs[0].dtype
    if op.upcast and out_dtype.category == 2 and out_dtype.itemsize == 2:
        bufs = [t._data.astype("float32") if t.dtype.category == 2 else t._data for t in inputs]
    else:
        bufs = [t._data for t in inputs]
    try:
        res = op.forward(be.xp, *bufs, **attrs)
    except EmberError:
        raise
    except (ValueError, IndexError, TypeError) as e:
        # Turn a kernel's complaint into ember's error: the shape rule names what was wrong.
        if op.shape is not None:
            op.shape(*inputs, **attrs)
        raise ShapeError(f"{op.name}: {e} (inputs {', '.join(fmt_shape(t.shape) for t in inputs)})") from None
    saved = None
    if op.saves:
        res, saved = res
    if res.__class__ is not be.ndarray:
        res = be.xp.asarray(res)
    if res.dtype != out_dtype.np:
        res = res.astype(out_dtype.np)
    out = Tensor._make(res, out_dtype, dev)
    if op.view and be.xp.may_share_memory(res, bufs[0]):
        out._vc = inputs[0]._vc
        out._base = inputs[0] if inputs[0]._base is None else inputs[0]._base
    if _Mode.enabled and op.differentiable:
        for t in inputs:
            if t.requires_grad:
                out.requires_grad = True
                out.grad_fn = Node(op, inputs, attrs, out, saved)
                break
    return out


# --- the engine --------------------------------------------------------------------------------


def _accumulate(buf: dict, node, g: Tensor) -> None:
    prev = buf.get(node)
    buf[node] = g if prev is None else prev + g


def _run_engine(roots, grads, retain_graph: bool, create_graph: bool, targets=None):
    """Propagate `grads` from `roots` back through the graph.

    Without `targets`, gradients accumulate into leaves' `.grad`. With `targets` (a dict
    node -> slot), only the part of the graph that reaches them runs and their gradients are
    returned in a list instead.
    """
    start = [_edge(r) for r in roots]
    for i, s in enumerate(start):
        if s is None:
            raise AutogradError(f"element {i} of the tensors passed to backward does not require grad "
                                "and has no grad_fn. Hint: did you create the inputs with "
                                "requires_grad=True, or run the forward under no_grad()?")
    # which nodes matter: all reachable ones, or those that lead to a target
    needed: dict = {}
    stack = [(s, False) for s in start]
    while stack:
        node, done = stack.pop()
        if done:
            needed[node] = targets is None or node in targets or any(
                needed.get(p, False) for p in node.parents if p is not None)
            continue
        if node in needed:
            continue
        needed[node] = False  # mark as visiting
        stack.append((node, True))
        for p in node.parents:
            if p is not None and p not in needed:
                stack.append((p, False))
    deps: dict = {}
    for node, need in needed.items():
        if need:
            for p in node.parents:
                if p is not None and needed.get(p):
                    deps[p] = deps.get(p, 0) + 1
    buf: dict = {}
    for s, g in zip(start, grads):
        _accumulate(buf, s, g)
    heap = []
    for s in set(start):
        if deps.get(s, 0) == 0 and needed.get(s):
            heapq.heappush(heap, (-s.seq, id(s), s))
    results = [None] * len(targets) if targets is not None else None
    with set_grad_enabled(create_graph):
        while heap:
            _, _, node = heapq.heappop(heap)
            g = buf.pop(node, None)
            if isinstance(node, AccumulateGrad):
                _finish_leaf(node.variable, g, targets, results, node, create_graph)
                continue
            if g is not None:
                for h in node.hooks:
                    r = h(g)
                    if r is not None:
                        g = r
                if targets is not None and node in targets:
                    results[targets[node]] = g
            grads_in = node.run(g) if g is not None else ()
            for i, p in enumerate(node.parents):
                if p is None or not needed.get(p):
                    continue
                gi = grads_in[i] if i < len(grads_in) else None
                if gi is not None:
                    if gi.shape != node.inputs[i].shape:
                        raise ShapeError(f"{node.op.name} backward produced a gradient of shape "
                                         f"{fmt_shape(gi.shape)} for input {i} of shape "
                                         f"{fmt_shape(node.inputs[i].shape)} (a bug in its backward rule)")
                    _accumulate(buf, p, gi)
                deps[p] -= 1
                if deps[p] == 0:
                    heapq.heappush(heap, (-p.seq, id(p), p))
            if not retain_graph:
                node.release()
    return results


def _finish_leaf(t: Tensor, g, targets, results, node, create_graph: bool) -> None:
    if g is None:
        return
    for h in t._hooks or ():
        r = h(g)
        if r is not None:
            g = r
    if targets is not None:
        if node in targets:
            results[targets[node]] = g
        return
    if t.grad is None:
        # a fresh buffer: backward rules may hand the same gradient to several inputs
        t.grad = g if create_graph else Tensor._make(g._data.copy(), g.dtype, g.device)
    elif create_graph or t.grad.requires_grad:
        t.grad = t.grad + g
    else:
        t.grad._data += g._data
        t.grad._vc[0] += 1
    for h in t._post_hooks or ():
        h(t)


def _grad_like(t: Tensor, gradient, where: str) -> Tensor:
    if gradient is None:
        if t._data.size != 1:
            raise AutogradError(f"{where}: grad can be implicitly created only for scalar outputs, but the "
                                f"output has shape {fmt_shape(t.shape)}. Pass gradient= (a tensor of that "
                                "shape), or reduce the output first (e.g. .sum()).")
        return Tensor._make(backend(t.device).xp.ones(t.shape, dtype=t.dtype.np), t.dtype, t.device)
    if not isinstance(gradient, Tensor):
        from .creation import tensor
        gradient = tensor(gradient, dtype=t.dtype)
    if gradient.shape != t.shape:
        raise ShapeError(f"{where}: gradient has shape {fmt_shape(gradient.shape)}, expected the output's "
                         f"shape {fmt_shape(t.shape)}")
    return gradient


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate gradients of `tensors` into the `.grad` of every leaf that requires grad."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors)
    grads = [_grad_like(t, g, "backward") for t, g in zip(tensors, grad_tensors)]
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        got = grad(tensors, inputs, grads, retain_graph=retain, create_graph=create_graph, allow_unused=True)
        for t, g in zip(inputs, got):
            if g is not None:
                t.grad = g if t.grad is None else t.grad + g
        return
    _run_engine(tensors, grads, retain, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool | None = None, materialize_grads: bool = False) -> tuple:
    """d(outputs)/d(inputs), returned rather than accumulated; `create_graph=True` records the
    backward pass so the result can be differentiated again."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    grads = [_grad_like(t, g, "grad") for t, g in zip(outputs, grad_outputs)]
    targets = {}
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise AutogradError(f"grad: input {i} does not require grad")
        targets[_edge(t)] = i
    retain = create_graph if retain_graph is None else retain_graph
    res = _run_engine(outputs, grads, retain, create_graph, targets)
    out = []
    for t, g in zip(inputs, res):
        if g is None:
            if materialize_grads:
                from .creation import zeros_like
                g = zeros_like(t)
            elif not allow_unused:
                raise AutogradError("grad: one of the differentiated tensors was not used in the graph; "
                                    "pass allow_unused=True if this is expected")
        out.append(g)
    return tuple(out)


def saved_tensor_bytes(*roots: Tensor) -> int:
    """Bytes of distinct buffers the graph behind `roots` keeps alive for backward.

    ember-specific (for measuring activation checkpointing): walks the tape, counting each
    saved input, output and extra buffer once.
    """
    seen_nodes, seen_bufs, total = set(), set(), 0
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]

    def count(buf):
        nonlocal total
        key = id(buf.base) if getattr(buf, "base", None) is not None else id(buf)
        if key not in seen_bufs:
            seen_bufs.add(key)
            total += buf.nbytes if buf.base is None else buf.base.nbytes
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes or isinstance(node, AccumulateGrad):
            continue
        seen_nodes.add(id(node))
        for t in node.inputs or ():
            if t.grad_fn is None and t.requires_grad:
                continue  # parameters are held anyway; count only activations
            count(t._data)
        for b in (node.saved or ()) if isinstance(node.saved, tuple) else ([node.saved] if node.saved is not None else []):
            if hasattr(b, "nbytes"):
                count(b)
        stack.extend(p for p in node.parents if p is not None)
    return total


__all__ = ["no_grad", "enable_grad", "inference_mode", "set_grad_enabled", "is_grad_enabled", "backward",
           "grad", "apply", "Node", "saved_tensor_bytes"]
