"""Library kernels for compiled plans: matmul through BLAS on OpenMP threads, fused attention,
im2col / col2im and max pooling.

library.c is hand-written (not generated): it calls a single-threaded sgemm from the same
OpenMP threads that run the fused kernels. The sgemm is Intel MKL's where the `mkl` wheel is
installed (`pip install ember[mkl]`; the BLAS PyTorch uses), else the OpenBLAS NumPy already
loaded (found in this process's memory map, so no second BLAS is linked); EMBER_BLAS=openblas or
=mkl picks one. `load()` builds library.c through the toolchain's cache and returns None where that
cannot work (no C compiler, no BLAS found); the runtime then uses the registry's NumPy kernels,
which give the same results up to rounding.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
from typing import NamedTuple

import numpy as np

from . import toolchain

SOURCE_PATH = os.path.join(os.path.dirname(__file__), "library.c")
# built as one translation unit: library.c, then attention.c (which uses library.c's helpers)
SOURCE_PATHS = (SOURCE_PATH, os.path.join(os.path.dirname(__file__), "attention.c"))


def source() -> str:
    """The C source load() builds: library.c and attention.c, in that order."""
    parts = []
    for path in SOURCE_PATHS:
        with open(path) as f:
            parts.append(f.read())
    return "\n".join(parts)
_c_void_p, _i64 = ctypes.c_void_p, ctypes.c_int64
_ONE, _ZERO, _NULL = _i64(1), _i64(0), _c_void_p(None)
# (symbol prefix, suffix, ILP64?) of the OpenBLAS builds NumPy ships or links
_VARIANTS = (("scipy_", "64_", True), ("", "64_", True), ("", "", False))
_state: dict = {}
_blas: dict = {}
_MKL_SEQUENTIAL = 1  # MKL_THREADING_SEQUENTIAL in mkl_service.h


class Blas(NamedTuple):
    """An sgemm to call: its library, the function's address, 64-bit integers?, and the library's
    set/get thread-count functions (None where it is single-threaded already)."""
    name: str
    path: str
    sgemm: int
    ilp64: bool
    set_threads: int | None
    get_threads: int | None
    dll: ctypes.CDLL


def _addr(fn) -> int:
    return ctypes.cast(fn, _c_void_p).value
# below this many multiply-adds waking the OpenMP threads costs more than the product (a decode
# step's (1, 128) @ (128, 512)): it runs on the calling thread. (Not handed to NumPy: that would
# wake OpenBLAS's own threads, which then spin on the cores the next kernels need.)
SMALL_MATMUL = 1 << 20
# below this OpenBLAS itself stays on the calling thread (its SMP threshold), and NumPy's call costs
# a few microseconds less than ours: a decode step's products go to NumPy
NUMPY_MATMUL = 1 << 18


def _openblas():
    """NumPy's OpenBLAS, found in this process's memory map: a `Blas`, or None."""
    paths = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1]
                name = os.path.basename(p).lower()
                if "openblas" in name and ".so" in name and p not in paths:
                    paths.append(p)
    except OSError:
        pass
    for path in paths:
        try:
            dll = ctypes.CDLL(path)
        except OSError:
            continue
        for pre, suf, ilp64 in _VARIANTS:
            try:
                fns = [getattr(dll, f"{pre}{f}{suf}") for f in
                       ("cblas_sgemm", "openblas_set_num_threads", "openblas_get_num_threads")]
            except AttributeError:
                continue
            return Blas("openblas", path, *(_addr(f) for f in fns[:1]), ilp64, *(_addr(f) for f in fns[1:]), dll)
    return None


def _mkl_paths() -> list[str]:
    """Where the `mkl` wheel puts libmkl_rt: <prefix>/lib of this environment (or the user base)."""
    import site
    prefixes = [sys.prefix, sys.base_prefix, getattr(site, "USER_BASE", None) or ""]
    return [os.path.join(d, "lib", n) for d in dict.fromkeys(prefixes) if d
            for n in ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so")]


def _mkl():
    """Intel MKL's single-threaded sgemm from the `mkl` wheel (`pip install ember[mkl]`), or None.

    It is loaded privately (RTLD_LOCAL), so PyTorch's own MKL in the same process is not touched,
    and with the sequential threading layer: our OpenMP threads split the work, as with OpenBLAS.
    """
    for path in _mkl_paths():
        if not os.path.exists(path):
            continue
        try:
            dll = ctypes.CDLL(path)
            layer = dll.MKL_Set_Threading_Layer(ctypes.c_int(_MKL_SEQUENTIAL))
            sgemm, set_n, get_n = dll.cblas_sgemm, dll.MKL_Set_Num_Threads, dll.MKL_Get_Max_Threads
        except (OSError, AttributeError):
            continue
        if layer == _MKL_SEQUENTIAL:  # nothing to switch off around our parallel regions
            return Blas("mkl", path, _addr(sgemm), False, None, None, dll)
        # MKL was initialised by someone else with threads: set its count to 1 around our regions
        return Blas("mkl", path, _addr(sgemm), False, _addr(set_n), _addr(get_n), dll)
    return None


def find_blas(name: str | None = None):
    """The BLAS whose sgemm library.c calls: a `Blas`, or None.

    `name` (or the EMBER_BLAS environment variable) is "mkl" or "openblas"; by default MKL where the
    `mkl` wheel is installed (1.05-1.2x OpenBLAS's sgemm on one core of this project's CI machine
    for a training step's shapes, and 1.5x once the operands are cold in cache: docs/compiler.md),
    else NumPy's OpenBLAS."""
    name = (name or os.environ.get("EMBER_BLAS") or "auto").lower()
    if name not in ("auto", "mkl", "openblas"):
        raise ValueError(f"EMBER_BLAS={name!r}: expected 'mkl' or 'openblas' (or unset for the fastest found)")
    if name not in _blas:
        _blas[name] = (_mkl() or _openblas()) if name == "auto" else (_mkl() if name == "mkl" else _openblas())
    return _blas[name]


def load():
    """The built library.c, bound to `find_blas()`'s sgemm; None where it cannot be used."""
    if "lib" in _state:
        return _state["lib"]
    lib = None
    blas = find_blas()
    if blas is not None and toolchain.find_compiler() is not None:
        try:
            lib = toolchain.build(source())
        except toolchain.CompileError as e:  # a compiler that rejects it: the NumPy kernels serve instead
            warnings.warn(f"ember.compile: library.c did not build, matmul and attention use NumPy:\n{e}",
                          stacklevel=2)
            _state["lib"] = None
            return None
        _bind(lib, blas)
        lib.ember_matmul.restype = None
        lib.ember_matmul_act_backward.restype = None
        lib.ember_sdpa_fwd.restype = None
        lib.ember_sdpa_bwd.restype = None
        lib.ember_unfold.restype = None
        lib.ember_fold.restype = None
        lib.ember_max_pool2d.restype = None
        lib.ember_max_pool2d_backward.restype = None
    _state["lib"] = lib
    return lib


def _bind(lib, blas: Blas) -> None:
    lib.ember_lib_init(_c_void_p(blas.sgemm), ctypes.c_int(int(blas.ilp64)), _c_void_p(blas.set_threads),
                       _c_void_p(blas.get_threads))
    _state["blas"] = blas


def current_blas() -> Blas | None:
    """The BLAS the loaded library.c calls (None before `load()` or where it is unavailable)."""
    return _state.get("blas")


def use_blas(name: str) -> Blas:
    """Bind the loaded library.c to another BLAS ("mkl" or "openblas"); returns the previous one.
    Raises RuntimeError when that BLAS or the library is not available."""
    lib, blas = load(), find_blas(name)
    if lib is None or blas is None:
        raise RuntimeError(f"use_blas({name!r}): " + ("library.c is not available" if lib is None else
                           f"no {name} found (mkl: pip install ember[mkl]; openblas: NumPy's)"))
    prev = _state["blas"]
    _bind(lib, blas)
    return prev


def _ptr(a: np.ndarray) -> _c_void_p:
    return _c_void_p(a.__array_interface__["data"][0])


def _mat_strides(a: np.ndarray):
    """Element strides of a's last two dims if BLAS can read it (one of them unit), else None."""
    r, c = a.shape[-2:]
    sr, sc = (s // 4 for s in a.strides[-2:])
    if c == 1 or sc == 1:
        return (max(sr, c, 1) if r > 1 else max(c, 1)), 1
    if r == 1 or sr == 1:
        return 1, (max(sc, r, 1) if c > 1 else max(r, 1))
    return None


def _batch_dims(a: np.ndarray, b: np.ndarray, batch_shape):
    """The (broadcast) batch dims of a and b as at most two (size, a stride, b stride) triples,
    outer first, merging dims that are one walk for both; None if more than two remain."""
    dims = []
    ea, eb = (np.broadcast_to(x, tuple(batch_shape) + x.shape[-2:]) for x in (a, b))
    for d, sa, sb in zip(batch_shape, ea.strides[:-2], eb.strides[:-2]):
        if d == 1:
            continue
        sa, sb = sa // 4, sb // 4
        if dims and dims[-1][1] == sa * d and dims[-1][2] == sb * d:
            dims[-1] = (dims[-1][0] * d, sa, sb)  # the outer dim steps exactly over this one
        else:
            dims.append((d, sa, sb))
    if len(dims) > 2:
        return None
    return [(1, 0, 0)] * (2 - len(dims)) + dims


# library.c's `activate_rows` codes
ACTIVATION_CODES = {None: 0, "relu": 1, "gelu_tanh": 2, "gelu": 3, "tanh": 4, "sigmoid": 5, "silu": 6}


def _product_2d(a: np.ndarray, b: np.ndarray):
    """(M, N, K, a's strides, b's strides) of a 2-D float32 product a @ b that library.c should
    take; None for another dtype or rank, an empty or mismatched one, one too small to be worth
    the call (NUMPY_MATMUL), or a layout BLAS cannot read."""
    if a.dtype != np.float32 or b.dtype != np.float32 or a.ndim != 2 or b.ndim != 2:
        return None
    (M, K), N = a.shape, b.shape[1]
    if b.shape[0] != K or not M or not N or not K or M * N * K < NUMPY_MATMUL:
        return None
    sa, sb = _mat_strides(a), _mat_strides(b)
    return None if sa is None or sb is None else (M, N, K, sa, sb)


def matmul(lib, a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None, act: str | None = None):
    """a @ b (+ bias) for float32 operands of 2+ dims through ember_matmul; with `act`, the pair
    (act(product), product). None if the layout is one BLAS cannot read directly (the caller then
    uses NumPy)."""
    if a.dtype != np.float32 or b.dtype != np.float32 or a.ndim < 2 or b.ndim < 2:
        return None
    M, K = a.shape[-2:]
    N = b.shape[-1]
    if b.shape[-2] != K:
        return None
    if a.ndim == 2 and b.ndim == 2 and M and N and K:  # the common case, without the batch logic
        p = _product_2d(a, b)
        if p is None:
            return None
        sa, sb = p[3:]
        out = np.empty((M, N), np.float32)
        y = np.empty((M, N), np.float32) if act else None
        lib.ember_matmul(_ONE, _ONE, _i64(M), _i64(N), _i64(K), _ptr(a), _ZERO, _ZERO, _i64(sa[0]), _i64(sa[1]),
                         _ptr(b), _ZERO, _ZERO, _i64(sb[0]), _i64(sb[1]), _ptr(out),
                         _ptr(bias) if bias is not None else _NULL, _i64(SMALL_MATMUL),
                         ctypes.c_int(ACTIVATION_CODES[act]), _ptr(y) if act else _NULL)
        return (y, out) if act else out
    batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    sa, sb = _mat_strides(a), _mat_strides(b)
    if sa is None or sb is None:
        return None
    bd = _batch_dims(a, b, batch_shape)
    if bd is None:
        return None
    out = np.empty(tuple(batch_shape) + (M, N), np.float32)
    if out.size == 0 or K == 0:
        return None  # nothing to multiply: NumPy's kernel handles the edge case
    (b1, sa1, sb1), (b2, sa2, sb2) = bd
    y = np.empty_like(out) if act else None
    lib.ember_matmul(_i64(b1), _i64(b2), _i64(M), _i64(N), _i64(K), _ptr(a), _i64(sa1), _i64(sa2), _i64(sa[0]),
                     _i64(sa[1]), _ptr(b), _i64(sb1), _i64(sb2), _i64(sb[0]), _i64(sb[1]), _ptr(out),
                     _ptr(bias) if bias is not None else _c_void_p(None), _i64(SMALL_MATMUL),
                     ctypes.c_int(ACTIVATION_CODES[act]), _ptr(y) if act else _NULL)
    return (y, out) if act else out


# library.c's `act_grad_rows` codes, by the EPILOGUE_ACTIVATION_GRADS name
ACTIVATION_GRAD_CODES = {"relu": 1, "gelu_tanh": 2, "gelu": 3, "tanh": 4, "sigmoid": 5}


def matmul_act_backward(lib, a: np.ndarray, b: np.ndarray, s: np.ndarray, act: str, with_sum: bool,
                        b_addr: _c_void_p | None = None):
    """(dh, dbias or None) for the registry's `matmul_act_backward`: dh = act's backward of the
    product a @ b (2-D float32) with s, dbias = dh summed over rows. None where library.c cannot
    take it (dtype, layout, a product too small to be worth it). `b_addr`: b's address where the
    caller knows it (a step remembers a weight's: Addresses)."""
    p = _product_2d(a, b)
    if p is None or s.dtype != np.float32 or s.size != p[0] * p[1]:
        return None
    M, N, K, sa, sb = p
    s = np.ascontiguousarray(s).reshape(M, N)
    dh = np.empty((M, N), np.float32)
    dbias = np.empty(N, np.float32) if with_sum else None
    lib.ember_matmul_act_backward(_i64(M), _i64(N), _i64(K), _ptr(a), _i64(sa[0]), _i64(sa[1]),
                                  _ptr(b) if b_addr is None else b_addr,
                                  _i64(sb[0]), _i64(sb[1]), _ptr(s), _ptr(dh),
                                  _ptr(dbias) if with_sum else _NULL, _i64(SMALL_MATMUL),
                                  ctypes.c_int(ACTIVATION_GRAD_CODES[act]))
    return dh, dbias


def _strides4(a: np.ndarray):
    """Element strides of a float32 (B, H, rows, cols) array, the last two as BLAS reads them."""
    if a.dtype != np.float32 or a.ndim != 4:
        return None
    m = _mat_strides(a)
    if m is None:
        return None
    return (ctypes.c_int64 * 4)(a.strides[0] // 4, a.strides[1] // 4, *m)


def sdpa_forward(lib, q, k, v, scale: float, causal: bool):
    """(out, P) of the fused attention for float32 (B, H, L, E) inputs, out laid out (B, L, H, Ev):
    merging the heads, `out.transpose(1, 2).reshape(B, L, H * Ev)`, is then a view (the registry's
    op returns it contiguous, as PyTorch does); None if not applicable."""
    sq, sk, sv = _strides4(q), _strides4(k), _strides4(v)
    if sq is None or sk is None or sv is None or q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
        return None
    if min(q.shape) == 0 or min(k.shape) == 0:
        return None
    B, H, L, E = q.shape
    S, Ev = k.shape[2], v.shape[3]
    if B * H * L * S * (E + Ev) < NUMPY_MATMUL:  # a decode step's attention: not worth the threads
        return None
    out = np.empty((B, L, H, Ev), np.float32).transpose(0, 2, 1, 3)
    P = np.empty((B, H, L, S), np.float32)
    lib.ember_sdpa_fwd(_i64(B), _i64(H), _i64(L), _i64(S), _i64(E), _i64(Ev), _ptr(q), sq, _ptr(k), sk,
                       _ptr(v), sv, ctypes.c_float(scale), ctypes.c_int(int(causal)), _ptr(out), _ptr(P))
    return out, P


def sdpa_backward(lib, g, q, k, v, P, scale: float, causal: bool = False, with_sum: bool = False):
    """(3, B, H, L, E) gradients of q, k, v laid out (B, L, 3, H, E): the gradient of a fused qkv
    projection, which the compiled plan then hands out without assembling it (runtime.py); with
    `with_sum` the pair (gradients, their sum over B and L laid out (3, H, E): that projection's bias
    gradient). None if not applicable (needs L == S, E == Ev)."""
    arrs = [g, q, k, v]
    st = [_strides4(a) for a in arrs]
    if any(s is None for s in st) or len({a.shape for a in arrs}) != 1 or P.dtype != np.float32:
        return None
    B, H, L, E = q.shape
    if min(q.shape) == 0 or B * H * L * L * E * 2 < NUMPY_MATMUL:
        return None
    P = np.ascontiguousarray(P)
    grads = np.empty((B, L, 3, H, E), np.float32).transpose(2, 0, 3, 1, 4)
    dbias = np.empty((3, H, E), np.float32) if with_sum else None
    lib.ember_sdpa_bwd(_i64(B), _i64(H), _i64(L), _i64(E), _ptr(g), st[0], _ptr(q), st[1], _ptr(k), st[2],
                       _ptr(v), st[3], _ptr(P), ctypes.c_float(scale), ctypes.c_int(int(causal)), _ptr(grads),
                       _ptr(dbias) if with_sum else _NULL)
    return (grads, dbias) if with_sum else grads


def _geometry(size, k, d, pad, s):
    return (size + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def unfold(lib, x: np.ndarray, kernel, dilation, padding, stride, value):
    """ops/nn.py's Unfold (same layout: a (N, L, kh*kw*C) buffer seen as (N, kh*kw*C, L)); None if not
    float32."""
    if x.dtype != np.float32 or x.ndim != 4 or x.size == 0:
        return None
    N, C, H, W = x.shape
    (kh, kw), (dh, dw), ((pt, pb), (pl, pr)), (sh, sw) = kernel, dilation, padding, stride
    oh, ow = _geometry(H, kh, dh, (pt, pb), sh), _geometry(W, kw, dw, (pl, pr), sw)
    cols = np.empty((N, oh * ow, kh * kw * C), np.float32)
    sx = (ctypes.c_int64 * 4)(*(s // 4 for s in x.strides))
    lib.ember_unfold(*(_i64(v) for v in (N, C, H, W)), _ptr(x), sx,
                     *(_i64(v) for v in (kh, kw, dh, dw, pt, pl, sh, sw, oh, ow)), ctypes.c_float(value), _ptr(cols))
    return cols.transpose(0, 2, 1)


def fold(lib, cols: np.ndarray, output_size, kernel, dilation, padding, stride):
    """ops/nn.py's Fold (same layout: the padded channels-last image, seen as (N, C, H, W))."""
    if cols.dtype != np.float32 or cols.ndim != 3 or cols.size == 0:
        return None
    N = cols.shape[0]
    H, W = output_size
    (kh, kw), (dh, dw), ((pt, pb), (pl, pr)), (sh, sw) = kernel, dilation, padding, stride
    oh, ow = _geometry(H, kh, dh, (pt, pb), sh), _geometry(W, kw, dw, (pl, pr), sw)
    C = cols.shape[1] // (kh * kw)
    Hp, Wp = H + pt + pb, W + pl + pr
    out = np.empty((N, Hp, Wp, C), np.float32)
    sc = (ctypes.c_int64 * 3)(*(s // 4 for s in cols.strides))
    lib.ember_fold(*(_i64(v) for v in (N, C, Hp, Wp)), _ptr(cols), sc,
                   *(_i64(v) for v in (kh, kw, dh, dw, sh, sw, oh, ow)), _ptr(out))
    return out[:, pt:pt + H, pl:pl + W, :].transpose(0, 3, 1, 2)


def max_pool2d(lib, x: np.ndarray, kernel, dilation, padding, stride):
    """ops/nn.py's MaxPool2d: (out seen as NCHW, winning offsets) in its layouts; None unless float32
    with channels adjacent in memory (NumPy's strided loops beat a C walk over NCHW planes here)."""
    if x.dtype != np.float32 or x.ndim != 4 or x.size == 0 or (x.shape[1] > 1 and x.strides[1] != 4):
        return None
    N, C, H, W = x.shape
    (kh, kw), (dh, dw), ((pt, pb), (pl, pr)), (sh, sw) = kernel, dilation, padding, stride
    oh, ow = _geometry(H, kh, dh, (pt, pb), sh), _geometry(W, kw, dw, (pl, pr), sw)
    out = np.empty((N, oh, ow, C), np.float32)
    arg = np.empty((N, oh, ow, C), np.uint8 if kh * kw < 256 else np.int32)
    a8, a32 = (arg, None) if arg.dtype == np.uint8 else (None, arg)
    sx = (ctypes.c_int64 * 4)(*(s // 4 for s in x.strides))
    lib.ember_max_pool2d(*(_i64(v) for v in (N, C, H, W)), _ptr(x), sx,
                         *(_i64(v) for v in (kh, kw, dh, dw, pt, pl, sh, sw, oh, ow)), _ptr(out),
                         _ptr(a8) if a8 is not None else _NULL, _ptr(a32) if a32 is not None else _NULL)
    return out.transpose(0, 3, 1, 2), arg


def max_pool2d_backward(lib, g: np.ndarray, arg: np.ndarray, input_hw, kernel, dilation, padding, stride):
    """ops/nn.py's MaxPool2dBackward, in its layout (the padded channels-last image seen as NCHW)."""
    if g.dtype != np.float32 or g.ndim != 4 or g.size == 0 or arg.dtype not in (np.uint8, np.int32):
        return None
    N, C, oh, ow = g.shape
    H, W = input_hw
    (kh, kw), (dh, dw), ((pt, pb), (pl, pr)), (sh, sw) = kernel, dilation, padding, stride
    Hp, Wp = H + pt + pb, W + pl + pr
    arg = np.ascontiguousarray(arg)
    # where offset k of a window lands, relative to the window's corner, in out's elements
    offs = np.array([((k // kw) * dh * Wp + (k % kw) * dw) * C for k in range(kh * kw)], np.int64)
    a8, a32 = (arg, None) if arg.dtype == np.uint8 else (None, arg)
    out = np.empty((N, Hp, Wp, C), np.float32)
    sg = (ctypes.c_int64 * 4)(*(s // 4 for s in g.strides))
    lib.ember_max_pool2d_backward(*(_i64(v) for v in (N, C, Hp, Wp)), _ptr(g), sg,
                                  _ptr(a8) if a8 is not None else _NULL, _ptr(a32) if a32 is not None else _NULL,
                                  _ptr(offs), *(_i64(v) for v in (sh, sw, oh, ow)), _ptr(out))
    return out[:, pt:pt + H, pl:pl + W, :].transpose(0, 3, 1, 2)


class Addresses(dict):
    """Data addresses of arrays passed to C, one remembered array per slot (an operand of a call
    site, a parameter's buffer in an optimizer step): reading an address costs about a microsecond
    of Python, a few per product or parameter per step, and an operand that is the very same array
    as last call (a parameter, the cached transposed view of one, optimizer state) reuses it. One
    array per slot, so an array that changes every call is held only until the next."""

    def __call__(self, slot, a: np.ndarray) -> int:
        hit = self.get(slot)
        if hit is not None and hit[0] is a:
            return hit[1]
        addr = a.__array_interface__["data"][0]
        self[slot] = (a, addr)
        return addr


def step(graph, n, lib, fallback, stable=frozenset()):
    """A runtime closure for node `n` (matmul, sdpa, sdpa_backward) through library.c, using
    `fallback` (the registry's NumPy kernel) for any call whose dtype or layout it cannot take.
    `stable`: value ids whose buffer is the same array every call; their addresses are remembered
    (Addresses), other operands' read each call."""
    ins, outs = list(n.inputs), list(n.outs)
    if graph.values[outs[0]].dtype.np != np.float32:
        return fallback
    o0 = outs[0]
    cache, kept = Addresses(), {v for v in ins if v in stable}

    def addr(vid, x) -> _c_void_p:
        return _c_void_p(cache(vid, x) if vid in kept else x.__array_interface__["data"][0])
    if n.name in ("matmul", "matmul_bias", "matmul_bias_act"):
        a_id, b_id = ins[:2]
        bias_id = ins[2] if len(ins) > 2 else None
        act = n.attrs.get("act")
        o1 = outs[1] if act else None
        code = ctypes.c_int(ACTIVATION_CODES[act])
        last = [None, None]  # the 2-D operand layout of the last call and the integer arguments for it

        def run_matmul(env):
            a, b = env[a_id], env[b_id]
            bias = env[bias_id] if bias_id is not None else None
            if bias is not None and (bias.dtype != np.float32 or not bias.flags.c_contiguous):
                return fallback(env)
            if a.ndim == 2 and b.ndim == 2:  # the common case: the call's integers built once
                layout = (a.shape, a.strides, b.shape, b.strides, a.dtype, b.dtype)
                if layout != last[0]:
                    p = _product_2d(a, b)
                    last[0], last[1] = layout, (None if p is None else (
                        p[0], p[1], tuple(_i64(v) for v in p[:3]), (_i64(p[3][0]), _i64(p[3][1])),
                        (_i64(p[4][0]), _i64(p[4][1]))))
                if last[1] is not None:
                    M, N, mnk, sa, sb = last[1]
                    out = np.empty((M, N), np.float32)
                    y = np.empty((M, N), np.float32) if act else None
                    lib.ember_matmul(_ONE, _ONE, *mnk, addr(a_id, a), _ZERO, _ZERO, *sa, addr(b_id, b), _ZERO,
                                     _ZERO, *sb, _ptr(out), addr(bias_id, bias) if bias is not None else _NULL,
                                     _i64(SMALL_MATMUL), code, _ptr(y) if act else _NULL)
                    if act:
                        env[o0], env[o1] = y, out
                    else:
                        env[o0] = out
                    return
            r = matmul(lib, a, b, bias, act)
            if r is None:
                return fallback(env)
            if act:
                env[o0], env[o1] = r
            else:
                env[o0] = r
        return run_matmul
    if n.name == "matmul_act_backward":
        a_id, b_id, s_id = ins
        act, o1 = n.attrs["act"], (outs[1] if len(outs) > 1 else None)

        def run_matmul_act_backward(env):
            b = env[b_id]
            r = matmul_act_backward(lib, env[a_id], b, env[s_id], act, o1 is not None, addr(b_id, b))
            if r is None:
                return fallback(env)
            env[o0] = r[0]
            if o1 is not None:
                env[o1] = r[1]
        return run_matmul_act_backward
    if n.name == "sdpa":
        scale, causal, o1 = n.attrs["scale"], n.attrs["causal"], outs[1]
        q_id, k_id, v_id = ins
        # handed to the caller: contiguous, as eager (and PyTorch) return it
        returned = o0 in graph.roots()

        def run_sdpa(env):
            r = sdpa_forward(lib, env[q_id], env[k_id], env[v_id], scale, causal)
            if r is None:
                return fallback(env)
            env[o0], env[o1] = (np.ascontiguousarray(r[0]), r[1]) if returned else r
        return run_sdpa
    if n.name in ("sdpa_backward", "sdpa_backward_sum"):
        scale, causal = n.attrs["scale"], n.attrs["causal"]
        o1 = outs[1] if n.name == "sdpa_backward_sum" else None
        returned = o0 in graph.roots()

        def run_sdpa_backward(env):
            r = sdpa_backward(lib, *(env[i] for i in ins), scale, causal, o1 is not None)
            if r is None:
                return fallback(env)
            if o1 is not None:
                r, env[o1] = r
            env[o0] = np.ascontiguousarray(r) if returned else r
        return run_sdpa_backward
    if n.name in ("unfold", "fold"):
        fn, x_id, attrs = (unfold if n.name == "unfold" else fold), ins[0], n.attrs

        def run_im2col(env):
            r = fn(lib, env[x_id], **attrs)
            if r is None:
                return fallback(env)
            env[o0] = r
        return run_im2col
    if n.name == "max_pool2d_backward":
        g_id, arg_id, attrs = ins[0], ins[1], n.attrs

        def run_max_pool2d_backward(env):
            r = max_pool2d_backward(lib, env[g_id], env[arg_id], **attrs)
            if r is None:
                return fallback(env)
            env[o0] = r
        return run_max_pool2d_backward
    if n.name == "max_pool2d":
        x_id, attrs, o1 = ins[0], n.attrs, outs[1]

        def run_max_pool2d(env):
            r = max_pool2d(lib, env[x_id], **attrs)
            if r is None:
                return fallback(env)
            env[o0], env[o1] = r
        return run_max_pool2d
    return fallback


LIBRARY_OPS = ("matmul", "matmul_bias", "matmul_bias_act", "matmul_act_backward", "sdpa", "sdpa_backward",
               "sdpa_backward_sum",
               "unfold", "fold", "max_pool2d", "max_pool2d_backward")
