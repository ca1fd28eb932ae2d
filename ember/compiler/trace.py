"""Capture: run a function once on real inputs while recording every registry op `apply` runs.

The tracer maps each NumPy buffer it has seen to an SSA value of a Graph (graph.py). Buffers it
has not seen are lifted to externals fetched by identity at replay (parameters, constants).
The few places that change buffers outside `apply` (gradient accumulation, in-place ops,
`fill_`) are wrapped while tracing; optimizer steps are recorded as one node the runtime
replays with a fused kernel. `.item()`, `.numpy()`, `.tolist()` and random draws are graph
breaks; `bool(tensor)` becomes a value guard checked at replay.
"""

from __future__ import annotations

import contextlib
import os
import traceback

import numpy as np

from .. import autograd
from .. import dtype as dt
from ..tensor import Tensor
from .graph import AttrRef, Graph, Node, Ref


class GraphBreak(Exception):
    """Raised (fullgraph=True) or recorded (otherwise) when the function does something untraceable."""


class TensorGetter:
    """Fetch a tensor's live buffer at replay (parameters, inputs' captured constants)."""

    def __init__(self, t: Tensor, label: str):
        self.t, self.label = t, label

    def get(self):
        return self.t._data

    def set(self, buf) -> None:
        self.t._data[...] = buf
        self.t._vc[0] += 1

    def describe(self) -> str:
        return self.label


class GradGetter:
    """Fetch `p.grad`'s live buffer (gradients that exist before the call, accumulating)."""

    def __init__(self, p: Tensor, label: str):
        self.p, self.label = p, label

    def get(self):
        return self.p.grad._data

    def set(self, buf) -> None:
        self.p.grad._data[...] = buf

    def describe(self) -> str:
        return self.label


class InputGetter:
    """Positional slot `i` of the flattened call arguments."""

    def __init__(self, index: int):
        self.index = index

    def describe(self) -> str:
        return f"input {self.index}"


_EMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_frame() -> str:
    """'file:line in func' of the innermost stack frame outside the ember package."""
    for fr in reversed(traceback.extract_stack()[:-1]):
        if not os.path.abspath(fr.filename).startswith(_EMBER_DIR):
            return f"{fr.filename}:{fr.lineno} in {fr.name}"
    return "<unknown>"


class Tracer:
    """Records into `graph` while active; see the module docstring."""

    def __init__(self, fullgraph: bool = False, params: dict | None = None, decompose: bool = True):
        self.graph = Graph()
        self.decompose = decompose  # composites are recorded as their primitives
        self.decomposed = 0
        self.dispatches = 0  # ops `apply` ran eagerly while tracing
        self._decomposing = False
        self.fullgraph = fullgraph
        self.arr: dict = {}  # id(ndarray) -> value id
        self._keep: list = []  # keeps recorded buffers alive so ids stay unique while tracing
        self.ext_arrays: dict = {}  # external value id -> its buffer at trace time
        self.broken = None  # (where, why) after a graph break
        self.ran_backward = False  # a training step: its outputs may require grad (returned detached)
        self.paused = False
        self.params = params or {}  # id(param) -> name, from the modules/optimizers the function reaches
        self.grad_owner = {id(p.grad): (p, n) for p, n in self.params.values() if p.grad is not None}
        self.grad_before = {id(p): p.grad for p, _ in self.params.values()}

    # --- values ----------------------------------------------------------------------------
    def bind(self, buf, vid: int) -> None:
        self.arr[id(buf)] = vid
        v = self.graph.values[vid]
        if v.strides is None and isinstance(buf, np.ndarray) and buf.shape == v.shape:
            v.strides = buf.strides
        self._keep.append(buf)

    def add_input(self, t: Tensor, index: int) -> int:
        if id(t._data) in self.arr:  # the same tensor passed twice (the signature records it)
            return self.arr[id(t._data)]
        vid = self.graph.new_value(t.shape, t.dtype, "input")
        self.graph.externals[vid] = InputGetter(index)
        self.ext_arrays[vid] = t._data
        self.bind(t._data, vid)
        return vid

    def value_of(self, t: Tensor) -> int:
        vid = self.arr.get(id(t._data))
        if vid is not None:
            return vid
        if id(t) in self.grad_owner:
            p, name = self.grad_owner[id(t)]
            getter, source = GradGetter(p, f"{name}.grad"), "grad"
        elif id(t) in self.params:
            getter, source = TensorGetter(t, self.params[id(t)][1]), "param"
        else:
            source = "param" if t.requires_grad else "const"
            getter = TensorGetter(t, f"{source} {tuple(t.shape)}")
        vid = self.graph.new_value(t.shape, t.dtype, source)
        self.graph.externals[vid] = getter
        self.ext_arrays[vid] = t._data
        self.bind(t._data, vid)
        return vid

    def emit(self, op, inputs: list, attrs: dict, shape, dtype, buf=None) -> int:
        """Record a node the tracer saw outside `apply`; bind its result to `buf` if given."""
        vid = self.graph.new_value(shape, dtype, "node")
        self.graph.nodes.append(Node(op, inputs, attrs, [vid]))
        if buf is not None:
            self.bind(buf, vid)
        return vid

    # --- hooks -----------------------------------------------------------------------------
    def record(self, op, inputs, attrs, out: Tensor, saved) -> None:
        """Called by `apply` after it ran `op` (the dispatcher's only compiler hook)."""
        if self.paused:
            return
        if not self._decomposing:
            self.dispatches += 1
        if op.decompose is not None and op.kind == "composite" and self.decompose and self._decomposed(
                op, inputs, attrs, out, saved):
            return
        ins = [self.value_of(t) for t in inputs]
        refs: list = []
        attrs = {k: self._lift_attr(a, refs) for k, a in attrs.items()}
        vid = self.graph.new_value(out.shape, out.dtype, "node")
        node = Node(op, ins + refs, attrs, [vid], len(refs))
        if saved is not None:
            if not isinstance(saved, np.ndarray):
                self.brk(f"op {op.name} saves a non-array for backward")
                return
            sid = self.graph.new_value(saved.shape, dt.from_numpy_dtype(saved.dtype), "saved")
            node.outs.append(sid)
            self.bind(saved, sid)
        self.graph.nodes.append(node)
        self.bind(out._data, vid)
        shared = [i for i, t in zip(ins, inputs) if np.may_share_memory(out._data, t._data)]
        if shared:  # a view (or the input itself): whoever holds the output holds the input's buffer
            self.graph.aliases[vid] = shared

    def _decomposed(self, op, inputs, attrs, out: Tensor, saved) -> bool:
        """Record a composite's primitives instead of its fused eager kernel, so fusion sees them.
        An op that saves a buffer for backward (layer_norm's rstd) decomposes into (out, saved):
        the saved buffer becomes the primitives' value, which the backward ops then read."""
        mark = len(self.graph.nodes)
        self._decomposing = True
        try:
            with autograd.no_grad():
                d = op.decompose(*inputs, **attrs)
        finally:
            self._decomposing = False
        if not op.saves:
            self.decomposed += 1
            self.bind(out._data, self.value_of(d))
            return True
        if (isinstance(d, tuple) and len(d) == 2 and isinstance(saved, np.ndarray)
                and d[1].shape == saved.shape and d[1].dtype.np == saved.dtype):
            self.decomposed += 1
            self.bind(out._data, self.value_of(d[0]))
            self.bind(saved, self.value_of(d[1]))
            return True
        del self.graph.nodes[mark:]  # no (out, saved) of the saved buffer's kind: record the op itself
        return False

    def _lift_attr(self, a, refs: list):
        """Traced buffers inside attributes (x[idx] passes idx's buffer in `key`) become AttrRefs."""
        if isinstance(a, np.ndarray) and id(a) in self.arr:
            refs.append(self.arr[id(a)])
            return AttrRef(len(refs) - 1)
        if isinstance(a, (tuple, list)) and any(isinstance(x, np.ndarray) for x in a):
            return type(a)(self._lift_attr(x, refs) for x in a)
        return a

    def brk(self, why: str) -> None:
        """A graph break: error under fullgraph, else remember it and stop recording."""
        if self.paused:
            return
        where = user_frame()
        if self.fullgraph:
            raise GraphBreak(f"ember.compile(fullgraph=True): graph break at {where}: {why}")
        self.broken = (where, why)
        self.paused = True

    # --- finishing -------------------------------------------------------------------------
    def finish(self, result) -> Graph:
        g = self.graph
        g.outputs = self._outputs(result)
        for vid, buf in self.ext_arrays.items():
            cur = self.arr.get(id(buf))
            if cur is not None and cur != vid and not isinstance(g.externals[vid], InputGetter):
                g.writebacks.append((g.externals[vid], cur))
            elif cur is not None and cur != vid:
                self.brk("the function writes in place into one of its inputs")
        for p, _ in self.params.values():
            if p.grad is None:
                if self.grad_before.get(id(p)) is not None:
                    g.grads.append((p, None))
            else:
                vid = self.arr.get(id(p.grad._data))
                if vid is not None and g.values[vid].source in ("node", "saved"):
                    g.grads.append((p, vid))
        return g

    def _outputs(self, tree):
        if isinstance(tree, Tensor):
            if tree.requires_grad and not self.ran_backward:
                self.brk("an output requires grad: autograd cannot run across the compiled boundary "
                         "(compile the whole training step, or call it under no_grad)")
            return Ref(self.value_of(tree))
        if isinstance(tree, (list, tuple)):
            return type(tree)(self._outputs(t) for t in tree)
        if isinstance(tree, dict):
            return {k: self._outputs(v) for k, v in tree.items()}
        return tree


# --- the wrappers active while tracing ------------------------------------------------------


@contextlib.contextmanager
def tracing(tr: Tracer):
    """Install `tr` as the dispatcher's tracer and wrap the non-`apply` buffer writes."""
    from .. import creation as creation_mod
    from .. import ops as ops_mod
    from .. import random as random_mod
    from ..optim.optimizer import Optimizer

    saved = []

    def patch(obj, name, new):
        saved.append((obj, name, obj.__dict__.get(name, _MISSING)))
        setattr(obj, name, new)

    orig_add_grads = autograd._add_grads
    orig_bernoulli = creation_mod.bernoulli
    orig_finish = autograd._finish_leaf
    orig_inplace = ops_mod._inplace
    orig_fill = Tensor.fill_
    orig_item, orig_numpy, orig_tolist, orig_bool = Tensor.item, Tensor.numpy, Tensor.tolist, Tensor.__bool__

    def add_grads(prev, g, create_graph):
        out = orig_add_grads(prev, g, create_graph)
        if not tr.paused and out._data is not prev._data and id(out._data) not in tr.arr:
            from ..ops.registry import REGISTRY
            tr.emit(REGISTRY["add"], [tr.value_of(prev), tr.value_of(g)], {}, out.shape, out.dtype, out._data)
        return out

    def finish_leaf(t, g, *rest):  # (targets, results, node, create_graph, ...): passed through
        tr.ran_backward = True
        before = t.grad
        before_buf = before._data if before is not None else None
        before_v = before._vc[0] if before is not None else None
        if t._hooks and not tr.paused:
            tr.brk("a tensor hook on a leaf runs during backward")
        gid = tr.value_of(g) if (g is not None and not tr.paused) else None
        orig_finish(t, g, *rest)
        after = t.grad
        if tr.paused or gid is None or after is None or id(after._data) in tr.arr and after is not before:
            return
        from ..ops.registry import REGISTRY
        if before is None:
            tr.emit(REGISTRY["copy"], [gid], {}, after.shape, after.dtype, after._data)
        elif after is before and after._data is before_buf and after._vc[0] != before_v:
            old = tr.value_of(before)  # the buffer's value before `+=`
            tr.emit(REGISTRY["add"], [old, gid], {}, after.shape, after.dtype, after._data)

    def inplace(self, fn, *args, **kwargs):
        buf = self._data
        box = []
        if not tr.paused and buf.base is not None and id(buf.base) in tr.arr:
            tr.brk("an in-place write into a view of a traced buffer")

        def run(*a, **k):
            box.append(fn(*a, **k))
            return box[-1]
        out = orig_inplace(self, run, *args, **kwargs)
        if not tr.paused and self._data is buf and box:
            res = box[-1]
            vid = tr.value_of(res)
            if res.dtype is not self.dtype:
                from ..ops.registry import REGISTRY
                vid = tr.emit(REGISTRY["cast"], [vid], {"dtype": self.dtype}, self.shape, self.dtype)
            tr.bind(buf, vid)
        return out

    def fill(self, value):
        buf = self._data
        out = orig_fill(self, value)
        if not tr.paused and self._data is buf:
            if isinstance(value, Tensor):
                tr.brk("fill_ with a tensor value")
            else:
                tr.emit("fill", [], {"value": value, "shape": tuple(self.shape), "dtype": self.dtype},
                        self.shape, self.dtype, buf)
        return out

    def breaking(name, orig):
        def wrapper(self, *a, **k):
            tr.brk(f"Tensor.{name}() reads a tensor's value into Python")
            return orig(self, *a, **k)
        return wrapper

    def bool_guard(self):
        res = orig_bool(self)
        if not tr.paused:
            vid = tr.value_of(self)
            tr.graph.nodes.append(Node("guard_bool", [vid], {"expected": res, "where": user_frame()}, []))
        return res

    def random_break(name, orig):
        def wrapper(self, *a, **k):
            tr.brk(f"random numbers drawn inside the compiled function (Generator.{name})")
            return orig(self, *a, **k)
        return wrapper

    def bernoulli(p, generator=None):
        # a draw is a graph node that draws again at every replay, from the same generator, so a
        # compiled step consumes random numbers exactly as the eager step does (dropout's masks)
        if tr.paused:
            return orig_bernoulli(p, generator)
        pid = tr.value_of(p)
        tr.paused = True
        try:
            out = orig_bernoulli(p, generator)
        finally:
            tr.paused = tr.broken is not None
        tr.emit("random", [pid], {"fn": orig_bernoulli, "generator": generator, "dtype": p.dtype},
                out.shape, out.dtype, out._data)
        return out

    def step_wrapper(orig_step):
        def step(opt, closure=None):
            if closure is not None or tr.paused:
                if closure is not None:
                    tr.brk("optimizer.step(closure) re-evaluates the model")
                return orig_step(opt, closure)
            params = [p for grp in opt.param_groups for p in grp["params"] if p.grad is not None]
            ins = [tr.value_of(p.grad) for p in params]
            for p in params:
                vid = tr.value_of(p)
                if tr.graph.values[vid].source == "node":
                    tr.brk("optimizer.step on a parameter changed earlier in the same step")
            tr.paused = True
            try:
                res = orig_step(opt)
            finally:
                tr.paused = tr.broken is not None
            tr.graph.nodes.append(Node("optimizer_step", ins, {"optimizer": opt, "params": params}, []))
            return res
        return step

    try:
        patch(autograd, "_add_grads", add_grads)
        patch(autograd, "_finish_leaf", finish_leaf)
        patch(ops_mod, "_inplace", inplace)
        patch(Tensor, "fill_", fill)
        patch(Tensor, "zero_", lambda self: fill(self, 0))
        patch(Tensor, "item", breaking("item", orig_item))
        patch(Tensor, "numpy", breaking("numpy", orig_numpy))
        patch(Tensor, "tolist", breaking("tolist", orig_tolist))
        patch(Tensor, "__bool__", bool_guard)
        patch(creation_mod, "bernoulli", bernoulli)
        for name in ("uniform", "normal", "integers", "permutation"):
            patch(random_mod.Generator, name, random_break(name, getattr(random_mod.Generator, name)))
        for cls in _subclasses(Optimizer):
            if "step" in cls.__dict__:
                patch(cls, "step", step_wrapper(cls.__dict__["step"]))
        autograd._tracer = tr
        yield tr
    finally:
        autograd._tracer = None
        for obj, name, old in reversed(saved):
            if old is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, old)


_MISSING = object()


def _subclasses(cls):
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out
