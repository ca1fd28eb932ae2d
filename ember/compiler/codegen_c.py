"""Render kernel IR (kernel_ir.py) as C with OpenMP: `parallel for` over the outer loop, `simd` inner.

Each kernel becomes `void <name>(void **args)` taking its buffers in `Kernel.args` order. The
arithmetic mirrors NumPy's float32/float64 kernels operation by operation (no reassociation,
built with -ffp-contract=off) so compiled and eager results agree to rounding.
"""

from __future__ import annotations

import math

from .. import dtype as dt
from .kernel_ir import CTYPES, Kernel, Piece

PARALLEL_MIN = 1 << 14  # elements below which waking a thread costs more than it saves (W3: 2^20 -> 2^14 took
# the fused kernels from 16.8 to 10.8 ms a step once idle threads spin briefly, _threadpools.py)

# libm functions declared `omp declare simd`: inside `omp simd` loops GCC then calls glibc's
# vector variants (libmvec, <= 4 ulp) instead of one scalar call per element
_VECTOR_MATH = [(n + "f", "float") for n in ("exp", "log", "tanh", "sin", "cos", "expm1", "log1p", "pow", "erf")] + \
    [(n, "double") for n in ("exp", "log", "tanh", "sin", "cos", "expm1", "log1p", "pow", "erf")]
def _vector_decls() -> str:
    out = []
    for name, t in _VECTOR_MATH:
        params = ", ".join([t] * (2 if name.startswith("pow") else 1))
        out.append(f"#pragma omp declare simd notinbranch\n{t} {name}({params});\n")
    return "".join(out)


HEADER = """/* with AVX-512, let GCC use 512-bit vectors (its default stays 256): libmvec's 16-wide tanhf and
   expf make tanh-heavy kernels (gelu, gelu_backward) about 2x faster */
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#pragma GCC target("prefer-vector-width=512")
#endif
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
typedef long long i64;
""" + _vector_decls() + """static inline float sigmoidf_(float x) {
  float e = expf(-fabsf(x)); return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
static inline double sigmoid_(double x) {
  double e = exp(-fabs(x)); return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}
/* GeluBackward.forward, operation by operation */
#define GELU_BW_TANH(NAME, T, TANH, S, C, C3) \
static inline T NAME(T g, T x) { \
  T x2 = x * x; T t = TANH(S * (x + C * x2 * x)); T dinner = S * (1 + C3 * x2); \
  T d = 1 - t * t; d = d * dinner; d = d * x; d = d + t; d = d + 1; d = d * (T)0.5; return g * d; \
}
GELU_BW_TANH(gelu_bw_tanhf_, float, tanhf, 0.7978845608028654f, 0.044715f, 0.134145f)
GELU_BW_TANH(gelu_bw_tanh_, double, tanh, 0.7978845608028654, 0.044715, 0.134145)
"""


def _lit(value, dtype) -> str:
    if dtype is dt.float32:
        return f"{float(value)!r}f" if math.isfinite(value) else ("(-INFINITY)" if value < 0 else "INFINITY")
    if dtype is dt.float64:
        return f"{float(value)!r}" if math.isfinite(value) else ("(-INFINITY)" if value < 0 else "INFINITY")
    return str(int(value))


def _fn(name: str, dtype) -> str:
    """libm name for dtype: expf for float, exp for double."""
    return name + "f" if dtype is dt.float32 else name


def render_expr(expr, out_dtype) -> str:
    """C for one expression tree; temporaries are t<k>, arguments a<i>[offset]."""
    tag = expr[0]
    if tag == "tmp":
        return f"t{expr[1]}"
    if tag == "etmp":
        return f"e{expr[1]}"
    if tag == "red":
        return "r"
    if tag == "load":
        return f"a{expr[1]}[o{expr[1]}]"
    if tag == "const":
        return _lit(expr[1], expr[2])
    _, name, args, attrs, in_dtypes = expr
    a = [render_expr(x, d) for x, d in zip(args, in_dtypes)]
    T, F = out_dtype, (lambda f: _fn(f, out_dtype))
    one = _lit(1.0, T)
    if name in ("add", "sub", "mul", "div"):
        return f"({a[0]} {'+-*/'['add sub mul div'.split().index(name)]} {a[1]})"
    if name in ("eq", "ne", "lt", "le", "gt", "ge"):
        op = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[name]
        return f"({a[0]} {op} {a[1]})"
    if name == "maximum":
        return f"(({a[0]} > {a[1]} || {a[0]} != {a[0]}) ? {a[0]} : {a[1]})"
    if name == "minimum":
        return f"(({a[0]} < {a[1]} || {a[0]} != {a[0]}) ? {a[0]} : {a[1]})"
    if name == "pow":
        return f"{F('pow')}({a[0]}, {a[1]})"
    if name == "where":
        return f"({a[0]} ? {a[1]} : {a[2]})"
    if name == "cast":
        if T is dt.bool_:
            return f"({a[0]} != 0)"
        return f"(({CTYPES[T]}){a[0]})"
    if name in ("copy", "contiguous"):
        return a[0]
    if name == "neg":
        return f"(-{a[0]})"
    if name == "abs":
        return f"{F('fabs')}({a[0]})"
    if name in ("exp", "log", "sqrt", "tanh", "sin", "cos", "expm1", "log1p"):
        return f"{F(name)}({a[0]})"
    if name == "rsqrt":
        return f"({one} / {F('sqrt')}({a[0]}))"
    if name == "reciprocal":
        return f"({one} / {a[0]})"
    if name in ("isinf", "isnan", "isfinite"):  # C's classification macros, on a double for integer inputs
        return f"({name}((double){a[0]}) != 0)"
    if name == "sigmoid":
        return f"{'sigmoidf_' if T is dt.float32 else 'sigmoid_'}({a[0]})"
    if name == "silu":
        return f"({a[0]} * {'sigmoidf_' if T is dt.float32 else 'sigmoid_'}({a[0]}))"
    if name == "relu":
        return f"(({a[0]} > 0 || {a[0]} != {a[0]}) ? {a[0]} : {_lit(0.0, T)})"
    if name in ("logical_not", "bitwise_not"):
        return f"(!{a[0]})" if name == "logical_not" or T is dt.bool_ else f"(~{a[0]})"
    if name in ("logical_and", "logical_or"):
        return f"({a[0]} {'&&' if name == 'logical_and' else '||'} {a[1]})"
    if name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        return f"({a[0]} {'&|^'[('bitwise_and', 'bitwise_or', 'bitwise_xor').index(name)]} {a[1]})"
    if name == "clamp":
        x = a[0]
        if attrs.get("min") is not None:
            lo = _lit(attrs["min"], T)
            x = f"(({x} < {lo}) ? {lo} : {x})"
        if attrs.get("max") is not None:
            hi = _lit(attrs["max"], T)
            x = f"(({x} > {hi}) ? {hi} : {x})"
        return x
    # the fused backward ops, in the order ops/elementwise.py computes them (same rounding)
    if name == "threshold_backward":
        return f"((({CTYPES[T]})({a[1]} > 0)) * {a[0]})"
    if name == "tanh_backward":
        return f"(({one} - {a[1]} * {a[1]}) * {a[0]})"
    if name == "sigmoid_backward":
        return f"((({one} - {a[1]}) * {a[1]}) * {a[0]})"
    if name == "gelu_backward" and attrs.get("approximate") == "tanh":
        return f"{'gelu_bw_tanhf_' if T is dt.float32 else 'gelu_bw_tanh_'}({a[0]}, {a[1]})"
    if name == "gelu":
        x = a[0]
        if attrs.get("approximate") == "tanh":
            c = _lit(math.sqrt(2 / math.pi), T)
            k = _lit(0.044715, T)
            return (f"({_lit(0.5, T)} * {x} * ({one} + {F('tanh')}({c} * ({x} + {k} * {x} * {x} * {x}))))")
        return f"({_lit(0.5, T)} * {x} * ({one} + {F('erf')}({x} / {_lit(math.sqrt(2), T)})))"
    raise NotImplementedError(f"codegen_c: no C rendering for op {name!r}")


def _offsets(k: Kernel, loops: range, indent: str) -> list:
    lines = []
    for i, a in enumerate(k.args):
        terms = [f"i{d} * {a.strides[d]}" for d in loops if a.strides[d] != 0]
        lines.append(f"{indent}const i64 o{i} = {' + '.join(terms) or '0'};")
    return lines


def _decls(k: Kernel, indent: str, base: int = 0) -> list:
    """The kernel's argument pointers a0, a1, ... from `args[base + i]`."""
    out = []
    for i, a in enumerate(k.args):
        const = "" if a.output else "const "
        out.append(f"{indent}{const}{CTYPES[a.dtype]} *restrict a{i} = ({const}{CTYPES[a.dtype]} *)args[{base + i}];")
    return out


def _reduce_parts(k: Kernel):
    """(accumulator C type, initial value, combine expression, omp reduction clause) of k.reduce."""
    op, src, _, acc_dtype = k.reduce
    acc_t = "double" if acc_dtype in (dt.float32, dt.float64) and op == "sum" else CTYPES[acc_dtype]
    init = {"sum": "0", "amax": "-INFINITY", "amin": "INFINITY", "any": "0", "all": "1"}[op]
    combine = {"sum": "acc + t{s}", "amax": "(t{s} > acc ? t{s} : acc)", "amin": "(t{s} < acc ? t{s} : acc)",
               "any": "(acc | (t{s} != 0))", "all": "(acc & (t{s} != 0))"}[op].format(s=src)
    clause = {"sum": "+", "amax": "max", "amin": "min", "any": "|", "all": "&"}[op]
    return acc_t, init, combine, clause


def _row_body(k: Kernel, ind: str) -> list:
    """The work of one point of the outer loops `i0 .. i{n_outer-1}` (already open): the inner
    loops over the remaining dims, computing and storing the lets, accumulating the reduction,
    then storing it and evaluating the epilogue."""
    no, nd = k.n_outer, len(k.dims)
    lines = []
    # amax / amin propagate NaN as NumPy's do: a vectorised max reduction drops it, so a second
    # reduction notes whether any element was NaN
    nan = k.reduce is not None and k.reduce[0] in ("amax", "amin") and k.reduce[3].category == 2
    if k.reduce is not None:
        acc_t, init, combine, clause = _reduce_parts(k)
        lines.append(f"{ind}{acc_t} acc = {init};")
        if nan:
            lines.append(f"{ind}unsigned char nan = 0;")
    for d in range(no, nd):
        ind2 = ind + "  " * (d - no)
        if d == nd - 1:
            lines.append(f"{ind2}#pragma omp simd" + (f" reduction({clause}:acc)" if k.reduce is not None else "")
                         + (" reduction(|:nan)" if nan else ""))
        lines.append(f"{ind2}for (i64 i{d} = 0; i{d} < {k.dims[d]}; i{d}++) {{")
    inner = ind + "  " * (nd - no)
    lines += _offsets(k, range(nd), inner)
    lines += _lets(k, inner)
    for ai, t in k.stores:
        lines.append(f"{inner}a{ai}[o{ai}] = t{t};")
    if k.reduce is not None:
        lines.append(f"{inner}acc = {combine};")
        if nan:
            lines.append(f"{inner}nan |= (t{k.reduce[1]} != t{k.reduce[1]});")
    for d in reversed(range(no, nd)):
        lines.append(ind + "  " * (d - no) + "}")
    if k.reduce is None:
        return lines
    if nan:
        lines.append(f"{ind}if (nan) acc = NAN;")
    _, _, out_arg, acc_dtype = k.reduce
    oo = [f"i{d} * {k.args[out_arg].strides[d]}" for d in range(no) if k.args[out_arg].strides[d]]
    lines.append(f"{ind}a{out_arg}[{' + '.join(oo) or '0'}] = ({CTYPES[acc_dtype]})acc;")
    if k.epilogue:
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  const {CTYPES[acc_dtype]} r = ({CTYPES[acc_dtype]})acc;")
        lines += _offsets(k, range(no), ind + "  ")
        lines += [f"{ind}  const {CTYPES[d]} e{i} = {render_expr(e, d)};" for i, (d, e) in enumerate(k.epilogue)]
        lines += [f"{ind}  a{ai}[o{ai}] = e{t};" for ai, t in k.epi_stores]
        lines.append(f"{ind}}}")
    return lines


def _outer_loops(k: Kernel) -> list:
    """The outer loops of a row reduction or row kernel, the first one parallel when it pays."""
    no = k.n_outer
    lines = []
    for d in range(no):
        ind = "  " * (d + 1)
        if d == 0 and math.prod(k.dims) >= PARALLEL_MIN and math.prod(k.dims[:no]) > 1:
            lines.append(f"{ind}#pragma omp parallel for")
        lines.append(f"{ind}for (i64 i{d} = 0; i{d} < {k.dims[d]}; i{d}++) {{")
    return lines


def _column_phase_body(p: Kernel, ind: str, accs: str) -> list:
    """A column phase's work for one row (outer point i0): its prologue over the row, each value
    added into the row's column slot of the partial sums `accs` (doubles)."""
    no, nd = p.n_outer, len(p.dims)
    lines = []
    for d in range(no, nd):
        ind2 = ind + "  " * (d - no)
        if d == nd - 1:
            lines.append(f"{ind2}#pragma omp simd")
        lines.append(f"{ind2}for (i64 i{d} = 0; i{d} < {p.dims[d]}; i{d}++) {{")
    inner = ind + "  " * (nd - no)
    lines += _offsets(p, range(nd), inner) + _lets(p, inner)
    for ai, t in p.stores:
        lines.append(f"{inner}a{ai}[o{ai}] = t{t};")
    _, src, out, _ = p.reduce
    lines.append(f"{inner}{accs}[o{out}] += t{src};")
    for d in reversed(range(no, nd)):
        lines.append(ind + "  " * (d - no) + "}")
    return lines


def _render_rows(k: Kernel) -> str:
    """A row kernel: its phases, one after another, inside the shared outer loops. Each phase sees
    its own arguments as a0, a1, ... (declared in its block), so a later phase reads what an earlier
    one stored for the same row while the row is still in cache.

    Column phases (sums over the rows) add each row into partial sums. The rows are then cut into
    a fixed number of chunks (not one per thread), each with its own partials, added in chunk order
    at the end: the same sums for any thread count, as _column_reduce does."""
    cols = [i for i, p in enumerate(k.phases) if p.column]
    widths = [math.prod(k.phases[i].dims[k.n_outer:]) for i in cols]
    total = sum(widths)
    lines = [f"void {k.name}(void **args) {{"]
    if cols:  # one outer loop (fusion checks): chunks of it, in parallel
        rows = k.dims[0]
        nch = column_chunks(rows) if math.prod(k.dims) >= PARALLEL_MIN else 1
        lines += [f"  double *part = (double *)calloc({nch * total}, sizeof(double));"]
        if nch > 1:
            lines.append("  #pragma omp parallel for schedule(static)")
        lines += [f"  for (i64 c = 0; c < {nch}; c++) {{",
                  f"    for (i64 i0 = c * {rows} / {nch}; i0 < (c + 1) * {rows} / {nch}; i0++) {{"]
        ind = "      "
    else:
        lines += _outer_loops(k)
        ind = "  " * (k.n_outer + 1)
    base, bases = 0, []
    for i, p in enumerate(k.phases):
        bases.append(base)
        lines.append(f"{ind}{{  /* phase {i + 1}{' (column sums)' if p.column else ''} */")
        lines += _decls(p, ind + "  ", base)
        if p.column:
            off = sum(widths[:cols.index(i)])
            lines += _column_phase_body(p, ind + "  ", f"(part + c * {total} + {off})")
        else:
            lines += _row_body(p, ind + "  ")
        lines.append(f"{ind}}}")
        base += len(p.args)
    if cols:
        lines += ["    }", "  }"]
        for i, w in zip(cols, widths):
            p = k.phases[i]
            out = p.args[p.reduce[2]]
            off = sum(widths[:cols.index(i)])
            lines += [f"  {{  /* phase {i + 1}: partials added in chunk order */",
                      f"    {CTYPES[out.dtype]} *restrict dst = ({CTYPES[out.dtype]} *)args[{bases[i] + p.reduce[2]}];",
                      f"    for (i64 j = 0; j < {w}; j++) {{",
                      f"      double s = part[{off} + j];",
                      f"      for (i64 c = 1; c < {nch}; c++) s += part[c * {total} + {off} + j];",
                      f"      dst[j] = ({CTYPES[out.dtype]})s;",
                      "    }",
                      "  }"]
        lines.append("  free(part);")
    else:
        for d in reversed(range(k.n_outer)):
            lines.append("  " * (d + 1) + "}")
    lines.append("}")
    return "\n".join(lines)


def render_kernel(k: Kernel) -> str:
    """One kernel as a C function `void name(void **args)`."""
    if k.phases:
        return _render_rows(k)
    lines = [f"void {k.name}(void **args) {{"] + _decls(k, "  ")
    total = math.prod(k.dims)
    nd = len(k.dims)
    body_indent = "  " * (nd + 1)
    if k.pieces:
        for p in k.pieces:
            lines += _copy_piece(p, total >= PARALLEL_MIN)
    elif k.scatter is not None:
        lines += _scatter_add(k)
    elif k.gather is not None:
        lines += _gather_rows(k)
    elif k.reduce is None:
        for d in range(nd):
            ind = "  " * (d + 1)
            if d == 0 and total >= PARALLEL_MIN:
                lines.append(f"{ind}#pragma omp parallel for{' simd' if nd == 1 else ''}")
            elif d == nd - 1 and nd > 1:
                lines.append(f"{ind}#pragma omp simd")
            lines.append(f"{ind}for (i64 i{d} = 0; i{d} < {k.dims[d]}; i{d}++) {{")
        lines += _offsets(k, range(nd), body_indent)
        lines += _lets(k, body_indent)
        for ai, t in k.stores:
            lines.append(f"{body_indent}a{ai}[o{ai}] = t{t};")
        for d in reversed(range(nd)):
            lines.append("  " * (d + 1) + "}")
        if nd == 0:
            lines += ["  {"] + _offsets(k, range(0), "    ") + _lets(k, "    ") + \
                     [f"    a{ai}[o{ai}] = t{t};" for ai, t in k.stores] + ["  }"]
    elif k.column:
        acc_t, init, combine, _ = _reduce_parts(k)
        lines += _column_reduce(k, acc_t, init, combine)
    else:
        lines += _outer_loops(k) + _row_body(k, "  " * (k.n_outer + 1))
        for d in reversed(range(k.n_outer)):
            lines.append("  " * (d + 1) + "}")
    lines.append("}")
    return "\n".join(lines)


COLUMN_CHUNK_ROWS = 64  # a column reduction splits its reduced rows into chunks of at least this many
COLUMN_MAX_CHUNKS = 8  # ... and at most this many chunks, whatever the number of threads


def column_chunks(rows: int) -> int:
    """How many fixed chunks a column reduction over `rows` reduced rows is split into."""
    return max(1, min(COLUMN_MAX_CHUNKS, rows // COLUMN_CHUNK_ROWS))


def _column_reduce(k: Kernel, acc_t: str, init: str, combine: str) -> list:
    """A reduction whose innermost dim is kept (bias gradients reduce the leading dims, `x.sum(1)`
    of (B, T, C) a middle one): walk memory in order, the kept dims before the reduced ones
    outermost (`k.column_outer` loops), then the reduced dims, then the other kept dims innermost,
    contiguous and vectorized, each output accumulating in its own slot of a scratch array.

    Big enough to go parallel, threads split the outer kept loop; with no such loop, the outermost
    reduced loop is cut into a fixed number of chunks (not one per thread), each with its own
    partial results, combined in chunk order afterwards: the same result for any thread count and
    schedule."""
    op, src, out_arg, acc_dtype = k.reduce
    no, nd, c1 = k.n_outer, len(k.dims), k.column_outer
    kept = math.prod(k.dims[:no])
    rows = k.dims[no]
    big = math.prod(k.dims) >= PARALLEL_MIN
    nch = column_chunks(rows) if big and c1 == 0 else 1  # chunks only to go parallel
    pad = "  " if nch > 1 else ""  # the chunk loop's indent
    lines = [f"  {acc_t} *part = ({acc_t} *)malloc(sizeof({acc_t}) * {nch * kept});"]
    if nch > 1:
        lines += ["  #pragma omp parallel for schedule(static)",
                  f"  for (i64 c = 0; c < {nch}; c++) {{",
                  f"    {acc_t} *restrict accs = part + c * {kept};"]
    else:
        lines.append(f"  {acc_t} *restrict accs = part;")
    lines.append(f"{pad}  for (i64 j = 0; j < {kept}; j++) accs[j] = {init};")
    order = list(range(c1)) + list(range(no, nd)) + list(range(c1, no))
    for depth, d in enumerate(order):
        ind = pad + "  " * (depth + 1)
        if depth == 0 and c1 and big and k.dims[0] > 1:
            lines.append(f"{ind}#pragma omp parallel for")
        elif depth == nd - 1 and d < no:  # never on a reduced loop: its iterations share a slot
            lines.append(f"{ind}#pragma omp simd")
        if depth == 0 and nch > 1:
            lines.append(f"{ind}for (i64 i{d} = c * {rows} / {nch}; i{d} < (c + 1) * {rows} / {nch}; i{d}++) {{")
        else:
            lines.append(f"{ind}for (i64 i{d} = 0; i{d} < {k.dims[d]}; i{d}++) {{")
    inner = pad + "  " * (nd + 1)
    lines += _offsets(k, range(nd), inner)
    lines += _lets(k, inner)
    for ai, t in k.stores:
        lines.append(f"{inner}a{ai}[o{ai}] = t{t};")
    if op in ("amax", "amin"):  # no reduction clause here: a NaN element wins, as in NumPy
        cmp = ">" if op == "amax" else "<"
        combine = f"((t{src} {cmp} acc || t{src} != t{src}) ? t{src} : acc)"
    lines.append(f"{inner}{{ {acc_t} acc = accs[o{out_arg}]; accs[o{out_arg}] = {combine}; }}")
    for depth in reversed(range(nd)):
        lines.append(pad + "  " * (depth + 1) + "}")
    if nch > 1:
        merge = {"sum": "s + p[c * {n}]", "amax": "((p[c * {n}] > s || p[c * {n}] != p[c * {n}]) ? p[c * {n}] : s)",
                 "any": "(s | p[c * {n}])", "all": "(s & p[c * {n}])",
                 "amin": "((p[c * {n}] < s || p[c * {n}] != p[c * {n}]) ? p[c * {n}] : s)"}[op].format(n=kept)
        lines += ["  }",
                  f"  for (i64 j = 0; j < {kept}; j++) {{  /* partials combined in chunk order */",
                  f"    const {acc_t} *p = part + j;",
                  f"    {acc_t} s = p[0];",
                  f"    for (i64 c = 1; c < {nch}; c++) s = {merge};",
                  f"    a{out_arg}[j] = ({CTYPES[acc_dtype]})s;",
                  "  }"]
    else:
        lines.append(f"  for (i64 j = 0; j < {kept}; j++) a{out_arg}[j] = ({CTYPES[acc_dtype]})accs[j];")
    lines.append("  free(part);")
    return lines


def _copy_piece(p: Piece, parallel: bool) -> list:
    """One loop nest of a copy kernel: a box of the output from an input, or zeros (a gap)."""
    what = f"a{p.src}" if p.src is not None else "zeros"
    lines = [f"  /* {what} -> a{p.dst}, offset {p.dst_offset} */"]
    nd = len(p.dims)
    for d in range(nd):
        ind = "  " * (d + 1)
        if d == 0 and parallel and nd > 1:
            lines.append(f"{ind}#pragma omp parallel for")
        elif d == nd - 1:
            lines.append(f"{ind}#pragma omp {'parallel for simd' if parallel and nd == 1 else 'simd'}")
        lines.append(f"{ind}for (i64 i{d} = 0; i{d} < {p.dims[d]}; i{d}++) {{")
    dst = " + ".join([str(p.dst_offset)] * bool(p.dst_offset) + [f"i{d} * {s}" for d, s in enumerate(p.dst_strides)])
    src = " + ".join(f"i{d} * {s}" for d, s in enumerate(p.src_strides) if s) or "0"
    value = f"a{p.src}[{src}]" if p.src is not None else "0"
    lines.append(f"{'  ' * (nd + 1)}a{p.dst}[{dst}] = {value};")
    for d in reversed(range(nd)):
        lines.append("  " * (d + 1) + "}")
    return lines


def _scatter_add(k: Kernel) -> list:
    """out = 0; out[idx[i], :] += g[i, :] for every index position i in order (NumPy's add.at
    order, so sums round the same); negative indices count from the end, others outside are skipped."""
    sc = k.scatter
    rows = sc.n_rows
    lines = [f"  for (i64 j = 0; j < {math.prod(k.dims)}; j++) a2[j] = 0;"]
    ni, nr = len(sc.idx_dims), len(sc.row_dims)
    for d in range(ni):
        lines.append(f"{'  ' * (d + 1)}for (i64 i{d} = 0; i{d} < {sc.idx_dims[d]}; i{d}++) {{")
    ind = "  " * (ni + 1)
    at = " + ".join(f"i{d} * {s}" for d, s in enumerate(sc.idx_strides) if s) or "0"
    gi = " + ".join(f"i{d} * {s}" for d, s in enumerate(sc.g_idx_strides) if s) or "0"
    lines += [f"{ind}i64 r = (i64)a1[{at}];",
              f"{ind}if (r < 0) r += {rows};",
              f"{ind}if (r < 0 || r >= {rows}) continue;",
              f"{ind}const i64 go = {gi};"]
    for d in range(nr):
        if d == nr - 1:
            lines.append(f"{'  ' * (ni + d + 1)}#pragma omp simd")
        lines.append(f"{'  ' * (ni + d + 1)}for (i64 j{d} = 0; j{d} < {sc.row_dims[d]}; j{d}++) {{")
    row_size = math.prod(k.dims[1:])
    dst = " + ".join([f"r * {row_size}"] + [f"j{d} * {s}" for d, s in enumerate(sc.out_row_strides)])
    src = " + ".join(["go"] + [f"j{d} * {s}" for d, s in enumerate(sc.g_row_strides)])
    lines.append(f"{'  ' * (ni + nr + 1)}a2[{dst}] += a0[{src}];")
    for d in reversed(range(ni + nr)):
        lines.append("  " * (d + 1) + "}")
    return lines


def _gather_rows(k: Kernel) -> list:
    """out[i, :] = table[idx[i], :] for every index position i, in parallel over positions (a
    negative index counts from the end; a guard has checked the range)."""
    ga = k.gather
    n = math.prod(ga.idx_dims)
    row_size = math.prod(ga.row_dims)
    lines = []
    if n * row_size >= PARALLEL_MIN:
        lines.append("  #pragma omp parallel for")
    lines.append(f"  for (i64 p = 0; p < {n}; p++) {{")
    # the index position's offset in a1 from its row-major number p
    terms, rest = [], "p"
    for d in reversed(range(len(ga.idx_dims))):
        size, st = ga.idx_dims[d], ga.idx_strides[d]
        if st:
            terms.append(f"(({rest}) % {size}) * {st}" if d else f"({rest}) * {st}")
        rest = f"({rest}) / {size}"
    lines += [f"    i64 r = (i64)a1[{' + '.join(terms) or '0'}];",
              f"    if (r < 0) r += {ga.n_rows};",
              f"    const {CTYPES[k.args[0].dtype]} *src = a0 + r * {ga.table_stride0};",
              f"    {CTYPES[k.args[2].dtype]} *dst = a2 + p * {row_size};"]
    nr = len(ga.row_dims)
    for d in range(nr):
        if d == nr - 1:
            lines.append(f"{'  ' * (d + 2)}#pragma omp simd")
        lines.append(f"{'  ' * (d + 2)}for (i64 j{d} = 0; j{d} < {ga.row_dims[d]}; j{d}++) {{")
    dst = " + ".join(f"j{d} * {s}" for d, s in enumerate(ga.out_row_strides))
    src = " + ".join(f"j{d} * {s}" for d, s in enumerate(ga.table_row_strides)) or "0"
    lines.append(f"{'  ' * (nr + 2)}dst[{dst}] = src[{src}];")
    for d in reversed(range(nr + 1)):
        lines.append("  " * (d + 1) + "}")
    return lines


def _lets(k: Kernel, indent: str) -> list:
    return [f"{indent}const {CTYPES[d]} t{i} = {render_expr(e, d)};" for i, (d, e) in enumerate(k.lets)]


def render_module(kernels: list, extra: str = "") -> str:
    """A whole translation unit: the header, every kernel, and `extra` hand-written code."""
    return HEADER + "\n\n".join(render_kernel(k) for k in kernels) + ("\n\n" + extra if extra else "") + "\n"
