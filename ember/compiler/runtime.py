"""Runtime: replay a compiled schedule on buffers.

A Plan turns the schedule (fusion.py) into a list of closures over a value table `env`: fused
kernels call the shared library built by toolchain.py, other nodes call the registry's own
kernel exactly as `apply` does (matmul, movement, composites), optimizer steps run fused.
After the schedule, write-backs copy new values into live buffers (in-place updates) and final
gradients are set on parameters.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..tensor import Tensor
from . import library
from .graph import AttrRef, Ref, _leaves
from .kernel_ir import contiguous_strides
from .library import Addresses
from .optim_kernels import run_optimizer_step
from .passes.copies import key_region
from .passes.memory import assign_buffers
from .trace import GradGetter, InputGetter

_c_void_p = ctypes.c_void_p


class GuardFailed(Exception):
    """A value guard (a traced `bool(tensor)`) saw a different value: the call must run eagerly."""


def _empty(shape, npd, order=None):
    """An uninitialised buffer of `shape` laid out row-major in dim order `order`."""
    if order is None or list(order) == sorted(order):
        return np.empty(shape, npd)
    inv = [0] * len(order)
    for i, d in enumerate(order):
        inv[d] = i
    return np.empty([shape[d] for d in order], npd).transpose(inv)


def _ptr(a) -> int:
    return a.__array_interface__["data"][0]


def _basic_key(key) -> bool:
    """Whether a getitem key has only slices, ints, None and Ellipsis (NumPy then returns a view)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice)) and not isinstance(k, bool)
               for k in parts)


def op_step(graph, n, same_buffer=frozenset()):
    """A closure running node `n` through its registry kernel, as `apply` does. A view op whose input
    is in `same_buffer` (the same buffer every call: a parameter, a buffer kept between calls)
    remembers its view."""
    op, ins, static, outs = n.op, list(n.inputs), n.attrs, list(n.outs)
    out_dtype = graph.values[outs[0]].dtype
    npd = out_dtype.np
    low = bool(op.upcast and out_dtype.is_low_precision)
    is_float = [graph.values[i].dtype.category == 2 for i in ins]
    fwd, saves = op.forward, op.saves
    o0 = outs[0]
    o1 = outs[1] if len(outs) > 1 else None
    if n.n_attr_inputs:
        refs = ins[len(ins) - n.n_attr_inputs:]
        ins = ins[:len(ins) - n.n_attr_inputs]
        is_float = is_float[:len(ins)]

        def resolve(a, env):
            if isinstance(a, AttrRef):
                return env[refs[a.index]]
            if isinstance(a, (tuple, list)):
                return type(a)(resolve(x, env) for x in a)
            return a

    n_refs = n.n_attr_inputs
    if op.view and not n_refs and not low and not saves and len(ins) == 1 and ins[0] in same_buffer:
        return _view_step(fwd, ins, static, o0, npd)
    if n.name in ("reshape", "permute") and not n_refs and not low:  # the array method, nothing else to do
        i0 = ins[0]
        if n.name == "reshape":
            shape = static["shape"]

            def reshape(env):
                env[o0] = env[i0].reshape(shape)
            return reshape
        dims = static["dims"]

        def permute(env):
            env[o0] = env[i0].transpose(dims)
        return permute
    if n.name == "getitem" and not n_refs and not low and _basic_key(static["key"]) and \
            graph.values[o0].shape:  # a basic key that keeps a dim: the slice is a view, as eager's
        i0, key = ins[0], static["key"]

        def getitem(env):
            env[o0] = env[i0][key]
        return getitem

    def step(env):
        attrs = {k: resolve(a, env) for k, a in static.items()} if n_refs else static
        bufs = [env[i] for i in ins]
        if low:
            bufs = [b.astype("float32") if f else b for b, f in zip(bufs, is_float)]
        res = fwd(np, *bufs, **attrs)
        if saves:
            res, saved = res
            if o1 is not None:
                env[o1] = saved
        if res.__class__ is not np.ndarray:
            res = np.asarray(res)
        if res.dtype != npd:
            res = res.astype(npd)
        env[o0] = res
    return step


def _view_step(fwd, ins, attrs, o0, npd):
    """A view op (reshape, permute, expand, a basic getitem) whose result is remembered: called again
    on the very same input buffer (a parameter, a buffer kept between calls) it hands back the same
    view instead of rebuilding it. A result that is a copy, not a view, is never reused: it would
    not see the input's new values."""
    last = [None, None]  # the input buffer and the view made of it

    def view(env):
        x = env[ins[0]]
        if x is last[0]:
            env[o0] = last[1]
            return
        res = fwd(np, *[env[i] for i in ins], **attrs)
        if res.__class__ is not np.ndarray:
            res = np.asarray(res)
        if res.dtype != npd:
            res = res.astype(npd)
        env[o0] = res
        if res.base is not None and np.may_share_memory(res, x):
            last[0], last[1] = x, res
    return view


def special_step(graph, n, lib):
    if n.op == "fill":
        shape, value, npd, o = n.attrs["shape"], n.attrs["value"], n.attrs["dtype"].np, n.outs[0]

        def fill(env):
            env[o] = np.full(shape, value, npd)
        return fill
    if n.op == "random":  # draw again, from the same generator, as the eager call did
        fn, gen, dtype, i, o = n.attrs["fn"], n.attrs["generator"], n.attrs["dtype"], n.inputs[0], n.outs[0]

        def draw(env):
            env[o] = fn(Tensor._make(env[i], dtype), gen)._data
        return draw
    if n.op == "guard_bool":
        i, expected, where = n.inputs[0], n.attrs["expected"], n.attrs["where"]

        def guard(env):
            if bool(env[i].reshape(())) != expected:
                raise GuardFailed(f"bool(tensor) at {where} is now {not expected}")
        return guard
    if n.op == "optimizer_step":
        opt, params, ins = n.attrs["optimizer"], n.attrs["params"], list(n.inputs)
        addresses = Addresses()

        def optimizer_step(env):
            run_optimizer_step(opt, params, [env[i] for i in ins], lib, addresses)
        return optimizer_step
    raise NotImplementedError(f"runtime: unknown special node {n.op!r}")


def kernel_step(graph, k, lib, fallback, made, persistent=None, stable=frozenset()):
    """A closure calling fused kernel `k`; if an input's layout differs from the one the kernel was
    generated for, it runs the group's nodes through their registry kernels instead."""
    fn = getattr(lib, k.name)
    fn.argtypes = [ctypes.POINTER(_c_void_p)]
    fn.restype = None
    # per argument, in the kernel's order: (False, vid, expected byte strides, None) for inputs,
    # (True, vid, shape, dtype) for fresh outputs, (True, vid, buffer, address) for persistent ones
    plan = []
    persistent = persistent or {}
    for a in k.args:
        v = graph.values[a.vid]
        if a.output and a.vid in persistent:  # allocated once, reused by every call
            buf = persistent[a.vid]
            plan.append((True, a.vid, buf, _ptr(buf)))
        elif a.output and a.order is not None and list(a.order) != sorted(a.order):
            plan.append((True, a.vid, (v.shape, a.order), v.dtype.np))
        elif a.output:
            plan.append((True, a.vid, v.shape, v.dtype.np))
        else:
            sb = made.get(a.vid, v.strides)
            if sb is None:
                sb = tuple(s * v.dtype.itemsize for s in contiguous_strides(v.shape))
            plan.append((False, a.vid, sb, None))
    arr_t = _c_void_p * len(k.args)
    stats = {"calls": 0, "fallbacks": 0}
    seen: dict = {}  # input value -> the buffer it had last call and its address (stable values only)
    seen_ptr: dict = {}

    def run_kernel(env):
        ptrs = []
        for is_out, vid, x, npd in plan:
            if is_out:
                if x.__class__ is tuple:
                    o = np.empty(x, npd) if not x or x[0].__class__ is int else _empty(x[0], npd, x[1])
                    ptrs.append(_ptr(o))
                else:  # a persistent buffer and its address
                    o = x
                    ptrs.append(npd)
                env[vid] = o
                continue
            a = env[vid]
            if a is seen.get(vid):  # the same buffer as last call (persistent, a parameter)
                ptrs.append(seen_ptr[vid])
                continue
            if a.strides != x:
                stats["fallbacks"] += 1
                for f in fallback:
                    f(env)
                return
            p = _ptr(a)
            ptrs.append(p)
            if vid in stable:
                seen[vid], seen_ptr[vid] = a, p
        stats["calls"] += 1
        fn(arr_t(*ptrs))
    run_kernel.stats = stats
    return run_kernel


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def assemble_in_place_step(graph, n, copy_step):
    """An assemble_slices step that copies nothing when the pieces already lie where the output
    puts them, in one buffer laid out row-major as the output (the fused attention backward's dq,
    dk, dv, written side by side as the qkv projection's gradient): the output is then a view of
    that buffer. Otherwise `copy_step` (its copy kernel) runs."""
    shape, keys, out = n.attrs["shape"], n.attrs["keys"], n.outs[0]
    dtype = graph.values[out].dtype.np
    itemsize = np.dtype(dtype).itemsize
    contiguous = tuple(s * itemsize for s in contiguous_strides(shape))
    boxes = []  # where each key's box sits in a row-major array of `shape`: byte offset, shape, strides
    for key in keys:
        box, offset = key_region(shape, key)
        boxes.append((offset * itemsize, box.shape, tuple(s * itemsize for s in box.strides)))
    nbytes = int(np.prod(shape)) * itemsize
    ins = list(n.inputs)
    stats = copy_step.stats  # the kernel's calls and fallbacks, and the calls that copied nothing
    stats["in_place"] = 0

    def step(env):
        start = None
        for vid, (off, box_shape, box_strides) in zip(ins, boxes):
            g = env[vid]
            if g.dtype != dtype:
                return copy_step(env)
            v = g.view()
            try:
                v.shape = box_shape  # raises where the reshape would need a copy
            except AttributeError:
                return copy_step(env)
            ptr = v.__array_interface__["data"][0] - off
            if v.strides != box_strides or (start is not None and ptr != start):
                return copy_step(env)
            start = ptr
        root = _root(env[ins[0]])
        offset = start - root.__array_interface__["data"][0]
        if not root.flags.c_contiguous or offset < 0 or offset + nbytes > root.nbytes:
            return copy_step(env)
        env[out] = np.ndarray(shape, dtype, buffer=root, offset=offset, strides=contiguous)
        stats["in_place"] += 1
    step.stats = stats
    step.copy_step = copy_step
    return step


def internal_values(graph, lib) -> set:
    """Values no one can hold after a call returns: their kernels may write into buffers allocated
    once. Everything handed out (outputs, final gradients, gradients given to an optimizer's own
    eager step) and every buffer such a value was a view of stays freshly allocated."""
    from .optim_kernels import fusable
    exposed = set(_leaves(graph.outputs)) | {vid for _, vid in graph.grads if vid is not None}
    for n in graph.nodes:
        if n.name == "optimizer_step" and not (lib is not None and fusable(n.attrs["optimizer"])):
            exposed |= set(n.inputs)  # an eager step may keep a gradient (in its state)
    stack = list(exposed)
    while stack:
        for src in graph.aliases.get(stack.pop(), ()):
            if src not in exposed:
                exposed.add(src)
                stack.append(src)
    return {vid for vid in graph.values if vid not in exposed}


class Plan:
    """The executable form of one compiled signature."""

    def __init__(self, graph, schedule, groups, kernels, lib, made):
        self.graph = graph
        self.steps = []
        self.kernel_steps = []
        internal = internal_values(graph, lib)
        kernels = kernels or {}
        slot_of = assign_buffers(graph, schedule, kernels, internal)
        slots: dict = {}
        persistent = {}  # value id -> its (possibly shared) buffer
        for vid, sid in slot_of.items():
            if sid not in slots:
                a = next(a for k in kernels.values() for a in k.args if a.output and a.vid == vid)
                slots[sid] = _empty(graph.values[vid].shape, graph.values[vid].dtype.np, a.order)
            persistent[vid] = slots[sid]
        self.persistent_bytes = sum(b.nbytes for b in slots.values())
        # buffers likely to be the same object next call: persistent ones, parameters, constants
        stable = internal | {vid for vid, g in graph.externals.items() if not isinstance(g, InputGetter)}
        # values that are the very same buffer on every call: parameters and constants, buffers kept
        # between calls (views of them need not be rebuilt)
        same_buffer = set(persistent) | {vid for vid, g in graph.externals.items() if not isinstance(g, InputGetter)}
        # ... and the views of them that op_step's _view_step hands back unchanged every call
        views_kept = same_buffer | {n.outs[0] for n in graph.nodes if n.kind != "special" and n.op.view and
                                    not n.n_attr_inputs and len(n.inputs) == 1 and n.inputs[0] in same_buffer}
        blas = None  # matmul and attention kernels (library.c), built when the graph has such ops
        if lib is not None and any(graph.nodes[i].name in library.LIBRARY_OPS for k, i in schedule if k == "node"):
            blas = library.load()
        for kind, idx in schedule:
            if kind == "group":
                grp = groups[idx]
                members = grp.all_nodes()
                fallback = [op_step(graph, graph.nodes[i]) for i in members]
                if lib is None:
                    self.steps += fallback
                else:
                    s = kernel_step(graph, kernels[idx], lib, fallback, made, persistent, stable)
                    first = graph.nodes[members[0]]
                    if first.name == "assemble_slices" and not first.attrs["gaps"]:
                        s = assemble_in_place_step(graph, first, s)
                    self.steps.append(s)
                    self.kernel_steps.append(s)
            else:
                n = graph.nodes[idx]
                if n.kind == "special":
                    self.steps.append(special_step(graph, n, lib))
                elif blas is not None and n.name in library.LIBRARY_OPS and not n.n_attr_inputs:
                    self.steps.append(library.step(graph, n, blas, op_step(graph, n), views_kept))
                else:
                    self.steps.append(op_step(graph, n, same_buffer))
        self.n_values = len(graph.values)
        self.externals = [(vid, g.index if isinstance(g, InputGetter) else None, g)
                          for vid, g in graph.externals.items()]
        self.writebacks = list(graph.writebacks)
        self.grads = [(p, vid, graph.values[vid].dtype if vid is not None else None) for p, vid in graph.grads]
        # gradients the call replaces without reading them (the step set them to None first, as
        # zero_grad does): dropped before the steps run, as eager drops them at zero_grad, so their
        # memory is free for the new ones (the same blocks, still in cache, instead of new ones)
        read = {id(g.p) for g in graph.externals.values() if isinstance(g, GradGetter)}
        self.release = [p for p, _, _ in self.grads if id(p) not in read]

    def run(self, flat: list):
        """Replay on `flat` (the call's tensors, in argument order); returns the output structure."""
        env = [None] * self.n_values
        for p in self.release:
            p.grad = None
        for vid, index, getter in self.externals:
            env[vid] = flat[index]._data if index is not None else getter.get()
        for step in self.steps:
            step(env)
        for getter, vid in self.writebacks:
            getter.set(env[vid])
        for p, vid, dtype in self.grads:
            p.grad = None if vid is None else Tensor._make(env[vid], dtype, p.device)
        return _build(self.graph.outputs, env, self.graph)


def _build(tree, env, graph):
    if isinstance(tree, Ref):
        return Tensor._make(env[tree.vid], graph.values[tree.vid].dtype)
    if isinstance(tree, (list, tuple)):
        return type(tree)(_build(t, env, graph) for t in tree)
    if isinstance(tree, dict):
        return {k: _build(v, env, graph) for k, v in tree.items()}
    return tree
