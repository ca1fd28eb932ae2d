"""`ember.compile`: guards, the trace -> passes -> fusion -> codegen -> build pipeline, explain().

A CompiledFunction keeps one entry per input signature (shapes, dtypes, requires_grad,
strides, grad mode, training flags of the modules it reaches, non-tensor arguments). The first
call with a signature traces and compiles (returning the traced call's own results); later
calls replay the plan. Graph breaks and a missing C compiler fall back to eager with a warning.
"""

from __future__ import annotations

import os
import time
import types
import warnings

from .. import autograd
from ..tensor import Tensor
from . import toolchain
from .codegen_c import render_module
from .optim_kernels import OPTIM_C
from .passes.cse_dce import cse, dce
from .passes.fusion import fuse, lower
from .passes.memory import liveness
from .passes.simplify import simplify
from .runtime import GuardFailed, Plan
from .trace import GradGetter, GraphBreak, TensorGetter, Tracer, tracing

BACKENDS = ("c", "numpy")
_VIEW_OPS = ("reshape", "permute", "expand", "getitem")  # NumPy views: no pass over memory (getitem: slices)


class Entry:
    """What one signature compiled to (or why it runs eagerly)."""

    def __init__(self, signature):
        self.signature = signature
        self.eager_reason = None
        self.plan = None
        self.report: dict = {}
        self.param_checks: list = []
        self.graph = None


class CompiledFunction:
    """The callable `ember.compile` returns; see `explain()` for what it did."""

    def __init__(self, fn, backend: str = "c", fullgraph: bool = False):
        if backend not in BACKENDS:
            raise ValueError(f"ember.compile: backend must be one of {BACKENDS}, got {backend!r}")
        self.fn, self.backend, self.fullgraph = fn, backend, fullgraph
        self.entries: dict = {}
        self.modules, self.params = _reachable(fn)
        self.traces = 0
        self._warned = False
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    # --- calling -------------------------------------------------------------------------
    def signature(self, args, kwargs) -> tuple:
        flat: list = []
        # which parameters have a gradient: a step traced with none accumulates nothing into them
        key = (_sig(args, flat), _sig(kwargs, flat), autograd.is_grad_enabled(),
               tuple(m.training for m in self.modules), tuple(p.grad is None for p, _ in self.params.values()))
        if len(flat) > 1:  # which arguments are the same buffer: the graph reads each buffer once
            ids = [id(t._data) for t in flat]
            key += (tuple(ids.index(i) for i in ids),)
        return key, flat

    def __call__(self, *args, **kwargs):
        key, flat = self.signature(args, kwargs)
        entry = self.entries.get(key)
        if entry is not None and entry.plan is not None and not _params_unchanged(entry):
            entry = None
        if entry is None:
            return self._compile(key, flat, args, kwargs)
        if entry.plan is None:
            return self.fn(*args, **kwargs)
        try:
            return entry.plan.run(flat)
        except GuardFailed as e:
            entry.report["guard_failures"] = entry.report.get("guard_failures", 0) + 1
            entry.report["last_guard_failure"] = str(e)
            return self.fn(*args, **kwargs)

    def _compile(self, key, flat, args, kwargs):
        entry = Entry(key)
        self.entries[key] = entry
        self.traces += 1
        t0 = time.perf_counter()
        tr = Tracer(self.fullgraph, self.params)
        for i, t in enumerate(flat):
            tr.add_input(t, i)
        try:
            with tracing(tr):
                result = self.fn(*args, **kwargs)
        except BaseException:
            del self.entries[key]  # the function raised: nothing was learned about this signature
            raise
        if tr.broken is None:
            graph = tr.finish(result)
        if tr.broken is not None:
            where, why = tr.broken
            entry.eager_reason = f"graph break at {where}: {why}"
            warnings.warn(f"ember.compile({self.__name__}): graph break at {where}: {why}; this call "
                          "signature runs eagerly", stacklevel=2)
            return result
        entry.report["trace_s"] = time.perf_counter() - t0
        entry.report["decomposed"] = tr.decomposed
        entry.report["eager_dispatches"] = tr.dispatches
        self._build(entry, graph)
        entry.report["compile_s"] = time.perf_counter() - t0
        _debug_dump(self, entry)
        return result

    def _build(self, entry, graph) -> None:
        rep = entry.report
        entry.graph = graph
        rep["captured"] = graph.format()
        rep["passes"] = []
        g = graph
        n_dead = dce(g)
        rep["passes"].append(("dce", f"{n_dead} dead nodes removed", g.format()))
        fired = simplify(g)
        rep["passes"].append(("simplify", f"{len(fired)} rewrites: " + ", ".join(sorted({r for r, _ in fired})),
                              g.format()))
        n_cse = cse(g)
        n_dead = dce(g)
        rep["passes"].append(("cse_dce", f"{n_cse} merged, {n_dead} dead removed", g.format()))
        groups, schedule = fuse(g)
        kernels, made = lower(g, groups, schedule)
        scheduled = [i for kind, i in schedule if kind == "group"]  # row kernels, not their phases
        rep["groups"] = [(i, [g.nodes[j].name for j in groups[i].all_nodes()]) for i in scheduled]
        rep["kernels"] = kernels
        rep["schedule"] = schedule
        rep["memory"] = liveness(g, schedule, groups, kernels)
        rep["dot"] = g.to_dot([groups[i].all_nodes() for i in scheduled])
        n_ops = sum(1 for kind, i in schedule if kind == "node" and g.nodes[i].kind != "special")
        n_views = sum(1 for kind, i in schedule if kind == "node" and g.nodes[i].name in _VIEW_OPS)
        rep["steps"] = {"kernels": len(kernels), "library_ops": n_ops, "views": n_views,
                        "optimizer_steps": sum(1 for kind, i in schedule
                                               if kind == "node" and g.nodes[i].name == "optimizer_step")}
        entry.param_checks = [(getter, v.shape, v.dtype) for vid, getter in g.externals.items()
                              for v in [g.values[vid]] if isinstance(getter, (TensorGetter, GradGetter))]
        lib = None
        if self.backend == "c":
            source = render_module([kernels[i] for i in sorted(kernels)], OPTIM_C)
            rep["source"] = source
            if toolchain.find_compiler() is None:
                entry.eager_reason = "no C compiler (cc, gcc or clang) found"
                if not self._warned:
                    warnings.warn(f"ember.compile({self.__name__}): no C compiler (cc, gcc or clang) found on "
                                  "PATH; running eagerly", stacklevel=3)
                    self._warned = True
                return
            t = time.perf_counter()
            try:
                lib = toolchain.build(source)
            except toolchain.CompileError:
                entry.eager_reason = "the C compiler rejected the generated kernels; later calls run eagerly"
                raise
            rep["build_s"] = time.perf_counter() - t
        entry.plan = Plan(g, schedule, groups, kernels, lib, made)

    # --- seeing inside -------------------------------------------------------------------
    def explain(self, source: bool = False, kernel: str | None = None) -> str:
        """The captured graph, each pass, fusion groups, kernels (bytes moved), guards, memory;
        `source=True` adds the generated C, `kernel="k3"` just that kernel's C."""
        from .codegen_c import render_kernel
        out = [f"ember.compile({self.__name__}, backend={self.backend!r}): {len(self.entries)} signature(s), "
               f"{self.traces} trace(s)"]
        for i, (key, e) in enumerate(self.entries.items()):
            out.append(f"\n=== signature {i}: guards ===")
            out += ["  " + line for line in _describe_sig(key)]
            if e.eager_reason:
                out.append(f"  runs eagerly: {e.eager_reason}")
            rep = e.report
            if "captured" not in rep:
                continue
            if kernel is not None:
                k = next((k for k in rep["kernels"].values() if k.name == kernel), None)
                out.append(render_kernel(k) if k else f"no kernel named {kernel!r}")
                continue
            out.append(f"\n--- captured graph ({rep['eager_dispatches']} eager op dispatches; "
                       f"{rep.get('decomposed', 0)} composite ops decomposed into primitives) ---")
            out.append(rep["captured"])
            for name, summary, text in rep["passes"]:
                out.append(f"\n--- after {name}: {summary} ---")
                out.append(text)
            out.append("\n--- fusion groups ---")
            for gi, names in rep["groups"]:
                out.append(f"  k{gi}: {' -> '.join(names)}")
            out.append("\n--- kernels ---")
            for _, k in sorted(rep["kernels"].items()):
                red = f", reduces ({k.reduce[0]}) over {k.dims[k.n_outer:]}" if k.reduce else ""
                if k.phases:  # per outer point: each phase's reduction, or - for an elementwise one
                    red = (f", a row kernel over {k.dims[k.n_outer:]} per row: " +
                           " | ".join((p.reduce[0] + (" of columns" if p.column else "")) if p.reduce else "-"
                                      for p in k.phases))
                out.append(f"  {k.name}: loops {k.dims}{red}, {len(k.nodes)} ops, moves {k.bytes_moved()} B "
                           f"(the same ops unfused: {_unfused_bytes(e.graph, k)} B)")
            s = rep["steps"]
            launches = s["kernels"] + s["library_ops"] - s["views"] + s["optimizer_steps"]
            out.append(f"\nper call: {s['kernels']} fused kernels + {s['library_ops']} library ops (of which "
                       f"{s['views']} are views) + {s['optimizer_steps']} fused optimizer steps, against "
                       f"{rep['eager_dispatches']} eager op dispatches: {launches} passes over memory, "
                       f"{rep['eager_dispatches'] / max(launches, 1):.1f}x fewer")
            mem = rep["memory"]
            kept = f", {e.plan.persistent_bytes} B of them in buffers kept between calls" if e.plan else ""
            out.append(f"memory: plan peak {mem['plan_peak']} B of intermediates{kept}; eager allocates "
                       f"{mem['eager_total']} B in total")
            out.append(f"compile: {rep.get('compile_s', 0):.3f} s (trace {rep.get('trace_s', 0):.3f} s, build "
                       f"{rep.get('build_s', 0):.3f} s)")
            if e.plan is not None and e.plan.kernel_steps:
                fb = sum(s.stats["fallbacks"] for s in e.plan.kernel_steps)
                out.append(f"layout fallbacks so far: {fb}")
            if source and "source" in rep:
                out.append("\n--- generated C ---")
                out.append(rep["source"])
        return "\n".join(out)

    def to_dot(self, signature: int = 0) -> str:
        """Graphviz dot of one signature's graph after the passes, fusion groups as clusters."""
        e = list(self.entries.values())[signature]
        return e.report.get("dot", "digraph ember {}")


def compile(fn_or_module, backend: str = "c", fullgraph: bool = False) -> CompiledFunction:  # noqa: A001
    """Compile a function or Module into fused native kernels (see docs/compiler.md).

    `fn_or_module(*tensors)` may be a forward or a whole training step (forward, backward,
    optimizer step, zero_grad). Returns a callable with the same arguments and results (result
    tensors do not require grad). `backend="c"` builds C with OpenMP; `"numpy"` replays the
    captured graph with the registry's own kernels (for debugging). `fullgraph=True` turns graph
    breaks into errors.
    """
    return CompiledFunction(fn_or_module, backend, fullgraph)


# --- helpers ---------------------------------------------------------------------------------


def _sig(obj, flat: list):
    if isinstance(obj, Tensor):
        flat.append(obj)
        return ("T", obj.shape, obj.dtype.name, obj.requires_grad, obj._data.strides, obj.device.type
                if hasattr(obj.device, "type") else str(obj.device))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__,) + tuple(_sig(o, flat) for o in obj)
    if isinstance(obj, dict):
        return ("dict",) + tuple((k, _sig(v, flat)) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0])))
    try:
        hash(obj)
        return ("py", obj)
    except TypeError:
        return ("id", id(obj))


def _describe_sig(key) -> list:
    args, kwargs, grad, training = key[:4]
    lines = []

    def walk(s, path):
        if s[0] == "T":
            lines.append(f"{path}: Tensor shape={s[1]} dtype={s[2]} requires_grad={s[3]} strides={s[4]}")
        elif s[0] in ("tuple", "list"):
            for i, x in enumerate(s[1:]):
                walk(x, f"{path}[{i}]")
        elif s[0] == "dict":
            for k, x in s[1:]:
                walk(x, f"{path}[{k!r}]")
        else:
            lines.append(f"{path} == {s[1]!r}")
    walk(args, "args")
    walk(kwargs, "kwargs")
    lines.append(f"grad mode enabled == {grad}; module training flags == {training}")
    if len(key) > 4:
        lines.append(f"parameters without a gradient == {key[4]}")
    return lines


def _params_unchanged(entry) -> bool:
    for getter, shape, dtype in entry.param_checks:
        if isinstance(getter, GradGetter):
            g = getter.p.grad
            if g is None or g.shape != shape or g.dtype is not dtype:
                return False
        elif getter.t.shape != shape or getter.t.dtype is not dtype:
            return False
    return True


def _unfused_bytes(graph, k) -> int:
    """Bytes the kernel's ops read and write when each runs as its own pass (as eager does)."""
    return sum(graph.values[v].nbytes for i in k.nodes for n in [graph.nodes[i]] for v in n.inputs + n.outs[:1])


def _reachable(fn):
    """Modules and parameters `fn` can reach: itself, a bound method's owner, closure cells, default
    arguments and the globals its code names (one level deep), optimizers' parameter groups."""
    from ..nn.module import Module
    from ..optim.optimizer import Optimizer
    objs = []
    if isinstance(fn, Module):
        objs.append(fn)
    if isinstance(fn, types.MethodType):
        objs.append(fn.__self__)
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if code is not None:
        for cell in fn.__closure__ or ():
            try:
                objs.append(cell.cell_contents)
            except ValueError:
                pass
        objs += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
        g = getattr(fn, "__globals__", {})
        objs += [g[name] for name in code.co_names if name in g]
    modules, params = [], {}
    for o in objs:
        if isinstance(o, Module):
            for m in o.modules():
                if m not in modules:
                    modules.append(m)
            for name, p in o.named_parameters():
                params.setdefault(id(p), (p, name))
        elif isinstance(o, Optimizer):
            for gi, grp in enumerate(o.param_groups):
                for j, p in enumerate(grp["params"]):
                    params.setdefault(id(p), (p, f"param_groups[{gi}][{j}]"))
    return modules, params


def _debug_dump(cf, entry) -> None:
    if os.environ.get("EMBER_DEBUG") != "1":
        return
    root = os.environ.get("EMBER_DEBUG_DIR", "ember_debug")
    path = os.path.join(root, f"{cf.__name__}_{len(cf.entries) - 1}")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "explain.txt"), "w") as f:
        f.write(cf.explain())
    with open(os.path.join(path, "graph.dot"), "w") as f:
        f.write(entry.report.get("dot", ""))
    if "source" in entry.report:
        with open(os.path.join(path, "kernels.c"), "w") as f:
            f.write(entry.report["source"])


__all__ = ["compile", "CompiledFunction", "GraphBreak"]
