"""Reverse-mode autodiff: the dispatcher that records the tape, and the engine that replays it.

`apply(op, *inputs, **attrs)` runs an op's kernel and, when grad mode is on and an input
requires grad, links the output to a `Node`. `backward` walks the nodes latest first,
calling each op's backward rule, which is itself written with ember ops, so with
`create_graph=True` the backward pass is recorded too (higher-order gradients). Grad modes
live in grad_mode.py, custom `Function`s in function.py, `checkpoint` in activation_checkpoint.py;
all are re-exported here.
"""

from __future__ import annotations

import heapq
import itertools
import weakref

from .devices import CPU, backend
from .errors import AutogradError, DeviceError, EmberError, ShapeError, fmt_shape
from .grad_mode import (  # noqa: F401  (re-exported: ember.autograd.no_grad, ...)
    _Mode,
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .tensor import Tensor

# --- the tape ----------------------------------------------------------------------------------

_seq = itertools.count()
_LEAF_SEQ = 1 << 62


class Node:
    """One recorded op: its inputs, attributes and output, and the edges the engine follows.

    Backward rules receive the node as `ctx`: `ctx.inputs`, `ctx.out`, `ctx.saved` (extra
    buffers the kernel chose to keep), `ctx.needs_input_grad` and the op's attributes as
    `ctx.<name>`. `parents[i]` is where input i's gradient goes (None: nowhere).
    """

    __slots__ = ("op", "inputs", "attrs", "saved", "_out", "out_version", "parents", "versions", "seq",
                 "hooks", "_keep", "__weakref__")

    def __init__(self, op, inputs, attrs, out, saved=None):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.saved = saved
        self._out = weakref.ref(out)
        self.out_version = out._vc[0]  # an in-place change to the output makes `out` recompute it
        # this runs once per recorded op: unary and binary ops skip the generic loop
        n = len(inputs)
        if n == 2:
            a, b = inputs
            fa, fb = a.grad_fn, b.grad_fn
            if fa is None and a.requires_grad:
                fa = _leaf_edge(a)
            if fb is None and b.requires_grad:
                fb = _leaf_edge(b)
            self.parents = (fa, fb)
            self.versions = (a._vc[0], b._vc[0])
        elif n == 1:
            a = inputs[0]
            fa = a.grad_fn
            if fa is None and a.requires_grad:
                fa = _leaf_edge(a)
            self.parents = (fa,)
            self.versions = (a._vc[0],)
        else:
            parents, versions = [], []
            for t in inputs:
                f = t.grad_fn
                if f is None and t.requires_grad:
                    f = _leaf_edge(t)
                parents.append(f)
                versions.append(t._vc[0])
            self.parents = parents
            self.versions = versions
        self.seq = next(_seq)
        self.hooks = None

    @property
    def name(self) -> str:
        return self.op.name.title().replace("_", "")

    def __getattr__(self, key):
        try:
            return self.attrs[key]
        except (KeyError, TypeError):
            raise AttributeError(key) from None

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"

    @property
    def out(self) -> Tensor:
        """The op's output (recomputed if nothing holds it any more)."""
        o = self._out()
        if o is None or o._vc[0] != self.out_version:
            o = apply(self.op, *self.inputs, **self.attrs)
        return o

    @property
    def needs_input_grad(self) -> tuple:
        """For each input, whether its gradient is used (False: a backward rule may return None)."""
        p = self.parents
        if len(p) == 2:  # binary ops ask on every backward: skip the generic loop
            return (p[0] is not None, p[1] is not None)
        return tuple([q is not None for q in p])

    def run(self, g: Tensor) -> tuple:
        inputs = self.inputs
        if inputs is None:
            raise _freed_error(self.name)
        for t, v in zip(inputs, self.versions):
            if t._vc[0] != v:
                _raise_version_error(self.name, inputs, self.versions)
        grads = self.op.backward(self, g)
        return grads if grads.__class__ is tuple else (grads,)

    def release(self) -> None:
        """Free what backward needed (after it ran, unless retain_graph)."""
        for t in self.inputs:
            # An input that a producer not yet run may read back as its `ctx.out` (tanh, exp, ...):
            # hand it to that producer to hold, or dropping it here would force a recomputation.
            f = t.grad_fn
            if f is not None and f.__class__ is Node and f.inputs is not None and f._out() is t:
                f._keep = t
        self.inputs = None
        self.saved = None
        self._keep = None


def _freed_error(name: str) -> AutogradError:
    return AutogradError(
        f"{name}Backward: trying to backward through the graph a second time (its saved tensors were "
        "freed after the first backward). Pass retain_graph=True to the first backward() if you need "
        "to backward twice.")


def _raise_version_error(name: str, tensors, versions) -> None:
    for i, (t, v) in enumerate(zip(tensors, versions)):
        if t._vc[0] != v:
            raise AutogradError(
                f"{name}Backward: one of the tensors needed for gradient computation has been modified "
                f"by an in-place operation: input {i} of shape {fmt_shape(t.shape)} is at version "
                f"{t._vc[0]}, expected version {v}. Hint: replace the in-place op (add_, mul_, x[...] = "
                "...) with its out-of-place form, or .clone() the tensor before changing it.")


class AccumulateGrad:
    """The sink for a leaf tensor: adds incoming gradients into `.grad`, then runs its hooks."""

    __slots__ = ("variable", "seq", "parents", "__weakref__")
    name = "AccumulateGrad"

    def __init__(self, variable: Tensor):
        self.variable = variable
        # after every op node in the ready queue: run as soon as ready, so hooks fire early (DDP
        # overlap); unique so the queue never compares nodes
        self.seq = _LEAF_SEQ + next(_seq)
        self.parents = ()

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def _leaf_edge(t: Tensor) -> AccumulateGrad:
    """The one AccumulateGrad of leaf `t` (held weakly by t, strongly by the nodes that use it)."""
    acc = t._acc() if t._acc is not None else None
    if acc is None:
        acc = AccumulateGrad(t)
        t._acc = weakref.ref(acc)
    return acc


def _edge(t: Tensor):
    """Where gradient for `t` flows: its grad_fn, its leaf accumulator, or nowhere."""
    if t.grad_fn is not None:
        return t.grad_fn
    if not t.requires_grad:
        return None
    return _leaf_edge(t)


# --- dispatch ----------------------------------------------------------------------------------

_CPU_BACKEND = backend(CPU)
_new = object.__new__
_tracer = None  # set by ember.compiler while it traces a function: records every op apply runs


def apply(op, *inputs: Tensor, **attrs) -> Tensor:
    """Run `op` eagerly on tensors and record it for autograd. All inputs share one device."""
    x0 = inputs[0]
    dev = x0.device
    for t in inputs:
        if t.device is not dev and t.device != dev:
            raise DeviceError(f"{op.name}: expected all tensors on one device, got {dev} and {t.device}. "
                              f"Hint: move them with .to('{dev}')")
    be = _CPU_BACKEND if dev is CPU else backend(dev)
    out_dtype = op.dtype(*inputs, **attrs) if op.dtype is not None else x0.dtype
    if op.upcast and out_dtype.is_low_precision:
        bufs = [t._data.astype("float32") if t.dtype.category == 2 else t._data for t in inputs]
    elif len(inputs) == 2:  # the common cases without a comprehension's frame
        bufs = (x0._data, inputs[1]._data)
    elif len(inputs) == 1:
        bufs = (x0._data,)
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
    # Tensor._make inlined: this is the hottest line of the eager engine
    out = _new(Tensor)
    out._data = res
    out.dtype = out_dtype
    out.device = dev
    out.requires_grad = False
    out.grad = out.grad_fn = out._base = out._hooks = out._post_hooks = out._acc = None
    out._retains_grad = False
    if op.view and be.xp.may_share_memory(res, bufs[0]):
        out._vc = x0._vc
        out._base = x0 if x0._base is None else x0._base
    else:
        out._vc = [0]
    if _Mode.enabled and op.differentiable and out_dtype.category == 2:  # only floats carry gradients
        for t in inputs:
            if t.requires_grad:
                out.requires_grad = True
                out.grad_fn = Node(op, inputs, attrs, out, saved)
                break
    if _tracer is not None:
        _tracer.record(op, inputs, attrs, out, saved)
    return out


# --- the engine --------------------------------------------------------------------------------


def _add_grads(prev, g, create_graph: bool):
    """prev + g for two gradients of one tensor (without recording unless create_graph)."""
    if create_graph or prev.__class__ is not Tensor or g.__class__ is not Tensor or prev.dtype is not g.dtype:
        return prev + g
    # both are fresh gradients no one else records: add buffers directly (never in place:
    # a backward rule may have handed the same tensor to several inputs)
    return Tensor._make(prev._data + g._data, prev.dtype, prev.device)


def _count_deps(start) -> dict:
    """For every node reachable from `start`: how many edges lead into it."""
    deps: dict = {}
    seen = set(start)
    stack = list(seen)
    while stack:
        for p in stack.pop().parents:
            if p is None:
                continue
            n = deps.get(p)
            if n is None:
                deps[p] = 1
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
            else:
                deps[p] = n + 1
    return deps


def _prune(start, targets, stop_at_targets: bool):
    """Nodes that lead to a target (`needed`) and, among them, edge counts (`deps`)."""
    needed: dict = {}
    stack = [(s, False) for s in start]
    while stack:
        node, done = stack.pop()
        if done:
            needed[node] = node in targets or any(needed.get(p, False) for p in node.parents
                                                  if p is not None)
            continue
        if node in needed:
            continue
        needed[node] = False  # visiting
        if stop_at_targets and node in targets:
            needed[node] = True
            continue
        stack.append((node, True))
        for p in node.parents:
            if p is not None and p not in needed:
                stack.append((p, False))
    deps: dict = {}
    for node, need in needed.items():
        if need and not (stop_at_targets and node in targets):
            for p in node.parents:
                if p is not None and needed.get(p):
                    deps[p] = deps.get(p, 0) + 1
    return needed, deps


def _run_engine(roots, grads, retain_graph: bool, create_graph: bool, targets=None,
                stop_at_targets: bool = False):
    """Propagate `grads` from `roots` back through the graph, latest node first.

    Without `targets`, gradients accumulate into leaves' `.grad`. With `targets` (a dict
    node -> slot), only the part of the graph that reaches them runs and their gradients are
    returned in a list instead; `stop_at_targets` (used by checkpointing) also stops there,
    running neither the target nodes nor their hooks.
    """
    start = [_edge(r) for r in roots]
    for i, s in enumerate(start):
        if s is None:
            raise AutogradError(f"element {i} of the tensors passed to backward does not require grad "
                                "and has no grad_fn. Hint: did you create the inputs with "
                                "requires_grad=True, or run the forward under no_grad()?")
    if targets is None:
        needed = None
        deps = _count_deps(start)
    else:
        needed, deps = _prune(start, targets, stop_at_targets)
    buf: dict = {}
    # buffers a leaf may adopt as its .grad without a copy: not the seeds (the caller owns them), and
    # each at most once (backward rules may hand one gradient to several inputs)
    claimed = {id(g._data) for g in grads}
    for s, g in zip(start, grads):
        prev = buf.get(s)
        buf[s] = g if prev is None else _add_grads(prev, g, create_graph)
    heap = [(-s.seq, s) for s in set(start) if not deps.get(s) and (needed is None or needed[s])]
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    results = [None] * len(targets) if targets is not None else None
    with set_grad_enabled(create_graph):
        while heap:
            node = pop(heap)[1]
            g = buf.pop(node, None)
            if node.__class__ is AccumulateGrad:
                _finish_leaf(node.variable, g, targets, results, node, create_graph, stop_at_targets, claimed)
                continue
            if targets is not None and node in targets:
                if not stop_at_targets and g is not None and node.hooks:
                    g = _run_hooks(node.hooks, g)
                results[targets[node]] = g
                if stop_at_targets or not any(needed.get(p) for p in node.parents if p is not None):
                    continue  # nothing above it is wanted: don't run (or free) this node
            elif g is not None and node.hooks:
                g = _run_hooks(node.hooks, g)
            parents = node.parents
            inputs = node.inputs
            grads_in = node.run(g) if g is not None else ()
            n_grads = len(grads_in)
            for i, p in enumerate(parents):
                if p is None or (needed is not None and not needed.get(p)):
                    continue
                gi = grads_in[i] if i < n_grads else None
                if gi is not None:
                    if gi.__class__ is Tensor and gi._data.shape != inputs[i]._data.shape:
                        raise ShapeError(f"{node.name}Backward produced a gradient of shape "
                                         f"{fmt_shape(gi.shape)} for input {i} of shape "
                                         f"{fmt_shape(inputs[i].shape)} (a bug in its backward rule)")
                    prev = buf.get(p)
                    buf[p] = gi if prev is None else _add_grads(prev, gi, create_graph)
                n = deps[p] - 1
                deps[p] = n
                if n == 0:
                    push(heap, (-p.seq, p))
            if not retain_graph:
                node.release()
    return results


def _run_hooks(hooks, g):
    for h in tuple(hooks):  # a hook may remove itself
        r = h(g)
        if r is not None:
            g = r
    return g


def _finish_leaf(t: Tensor, g, targets, results, node, create_graph: bool, stop_at_targets: bool,
                 claimed: set) -> None:
    if g is None:
        return
    if stop_at_targets:
        results[targets[node]] = g
        return
    if g.__class__ is Tensor and g.dtype is not t.dtype:
        g = g.to(t.dtype)  # .grad always has the leaf's dtype
    if t._hooks:
        g = _run_hooks(t._hooks, g)
    if targets is not None:
        if node in targets:
            results[targets[node]] = g
        return
    if t.grad is None:
        if create_graph:
            t.grad = g
        else:
            a = g._data
            own = a.base is None and a.flags.writeable and id(a) not in claimed  # a fresh, unshared array
            claimed.add(id(a))
            t.grad = Tensor._make(a if own else a.copy(), g.dtype, g.device)
    elif create_graph or t.grad.requires_grad:
        t.grad = t.grad + g
    else:
        t.grad._data += g._data
        t.grad._vc[0] += 1
    if t._post_hooks:
        for h in tuple(t._post_hooks):
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
    return gradient if gradient.dtype is t.dtype else gradient.to(t.dtype)


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate gradients of `tensors` into the `.grad` of every leaf that requires grad.

    `grad_tensors` (one per tensor, same shape) seeds the backward pass; it may be omitted for
    one-element outputs. The graph is freed unless `retain_graph` (default: `create_graph`).
    """
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
    backward pass so the result can be differentiated again. Returns a tuple, one gradient per
    input (None for unused inputs when `allow_unused`; zeros when `materialize_grads`)."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    grads = [_grad_like(t, g, "grad") for t, g in zip(outputs, grad_outputs)]
    targets = {}
    slots = []
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise AutogradError(f"grad: input {i} (shape {fmt_shape(t.shape)}) does not require grad. "
                                "Hint: create it with requires_grad=True or call .requires_grad_()")
        slots.append(targets.setdefault(_edge(t), len(targets)))
    retain = create_graph if retain_graph is None else retain_graph
    res = _run_engine(outputs, grads, retain, create_graph, targets)
    out = []
    for i, t in enumerate(inputs):
        g = res[slots[i]]
        if g is None:
            if materialize_grads:
                from .creation import zeros_like
                g = zeros_like(t)
            elif not allow_unused:
                raise AutogradError(f"grad: input {i} (shape {fmt_shape(t.shape)}) was not used in the graph "
                                    "of the outputs; pass allow_unused=True if this is expected")
        out.append(g)
    return tuple(out)


def saved_tensor_bytes(*roots: Tensor) -> int:
    """Bytes of distinct buffers the graph behind `roots` keeps alive for backward.

    ember-specific (for measuring activation checkpointing): walks the tape, counting each
    saved input and extra buffer once (a view counts as its whole base buffer). Leaves that
    require grad (parameters) are not counted: they are held anyway.
    """
    seen_nodes, seen_bufs = set(), set()
    total = 0
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]

    def count(buf):
        nonlocal total
        if isinstance(buf, Tensor):
            buf = buf._data
        if not hasattr(buf, "nbytes"):
            return
        base = getattr(buf, "base", None)
        while getattr(base, "base", None) is not None:
            base = base.base
        owner = buf if base is None else base
        if id(owner) not in seen_bufs:
            seen_bufs.add(id(owner))
            total += int(owner.nbytes)
    keep = []  # keeps counted buffers alive so ids stay unique during the walk
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes or isinstance(node, AccumulateGrad):
            continue
        seen_nodes.add(id(node))
        keep.append(node)
        for t in getattr(node, "inputs", None) or ():
            if t.grad_fn is None and t.requires_grad:
                continue  # parameters are held anyway; count only activations
            count(t)
        saved = getattr(node, "saved", None)
        for b in saved if isinstance(saved, (tuple, list)) else (saved,):
            if b is not None:
                count(b)
        stack.extend(p for p in node.parents if p is not None)
    return total


__all__ = ["no_grad", "enable_grad", "inference_mode", "set_grad_enabled", "is_grad_enabled",
           "is_inference_mode_enabled", "backward", "grad", "apply", "Node", "saved_tensor_bytes",
           "Function", "FunctionCtx", "checkpoint"]

# Function and checkpoint are built on the machinery above (imported last: they import it)
from .activation_checkpoint import checkpoint  # noqa: E402
from .function import Function, FunctionCtx  # noqa: E402
