"""Fused optimizer updates: a traced `optimizer.step()` replays as C loops, all float32 parameters
in one parallel call (Adam/AdamW and SGD), float64 ones one call each.

The Adam/AdamW and SGD (momentum, dampening, Nesterov, weight decay, maximize) updates are
written out by hand in C (their scalars can change every step, so they are arguments, not
constants baked into a traced graph). The arithmetic follows ember.optim.Adam and ember.optim.SGD
operation by operation, in the parameter's dtype, so results are bitwise the eager ones. Other
optimizers run their own eager step.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from ..tensor import Tensor

ADAM_C = """
#define ADAM(NAME, T, SQRT) \\
void NAME(T *restrict p, const T *restrict g, T *restrict m, T *restrict v, i64 n, T b1, T omb1, T b2, \\
          T omb2, T c1, T c2, T shrink, T wd, int mode, int update_p) { \\
  _Pragma("omp parallel for simd if(n > 32768)") \\
  for (i64 i = 0; i < n; i++) { \\
    T pi = p[i], gi = g[i]; \\
    if (mode == 2) pi = pi * shrink; else if (mode == 1) gi = gi + pi * wd; \\
    T mi = m[i] * b1 + gi * omb1; \\
    T vi = v[i] * b2 + gi * gi * omb2; \\
    m[i] = mi; v[i] = vi; \\
    if (update_p) pi = pi - mi / (SQRT(vi) * c1 + c2); \\
    p[i] = pi; \\
  } \\
}
ADAM(ember_adam_f32, float, sqrtf)
ADAM(ember_adam_f64, double, sqrt)
/* Every float32 parameter of an Adam step in one parallel region: chunks of 32K elements of all the
   tensors are shared out over the threads (one tensor at a time would leave small ones on one core
   and pay a call per tensor). Per tensor: its buffers and scalars, as ember_adam_f32 takes them. */
/* chunks of 32K elements over nt tensors of n[t] elements: starts[t] is tensor t's first chunk */
static void chunk_starts(i64 nt, const i64 *n, i64 *starts) {
  starts[0] = 0;
  for (i64 t = 0; t < nt; t++) starts[t + 1] = starts[t] + (n[t] + 32767) / 32768;
}
/* the tensor chunk c belongs to, and its element range [*lo, *hi) */
static inline i64 chunk_range(i64 c, const i64 *starts, const i64 *n, i64 *lo, i64 *hi) {
  i64 t = 0;
  while (starts[t + 1] <= c) t++;
  *lo = (c - starts[t]) * 32768;
  *hi = *lo + 32768 < n[t] ? *lo + 32768 : n[t];
  return t;
}
void ember_adam_all_f32(i64 nt, float **p, float **g, float **m, float **v, const i64 *n, const float *sc,
                        const int *mode, const int *update_p) {
  i64 starts[nt + 1];
  chunk_starts(nt, n, starts);
  _Pragma("omp parallel for schedule(dynamic)")
  for (i64 c = 0; c < starts[nt]; c++) {
    i64 lo, hi, t = chunk_range(c, starts, n, &lo, &hi);
    /* the scalars in locals: read through pointers inside the loop, GCC must assume the stores
       change them, and the loop stays scalar (1.1 ms -> 0.5 ms for W3's AdamW step) */
    const float *s = sc + 8 * t;  /* b1, 1-b1, b2, 1-b2, c1, c2, shrink, wd */
    const float b1 = s[0], omb1 = s[1], b2 = s[2], omb2 = s[3], c1 = s[4], c2 = s[5], shrink = s[6], wd = s[7];
    const int md = mode[t], up = update_p[t];
    float *restrict pp = p[t], *restrict mm = m[t], *restrict vv = v[t];
    const float *restrict gg = g[t];
    _Pragma("omp simd")  /* and sqrtf then vectorises (without it GCC keeps the libm call: errno) */
    for (i64 i = lo; i < hi; i++) {
      float pi = pp[i], gi = gg[i];
      if (md == 2) pi = pi * shrink; else if (md == 1) gi = gi + pi * wd;
      float mi = mm[i] * b1 + gi * omb1;
      float vi = vv[i] * b2 + gi * gi * omb2;
      mm[i] = mi; vv[i] = vi;
      if (up) pi = pi - mi / (sqrtf(vi) * c1 + c2);
      pp[i] = pi;
    }
  }
}
#define SGD(NAME, T) \
void NAME(T *restrict p, const T *restrict g, T *restrict buf, i64 n, T lr, T wd, T mom, T omdamp, \
          int has_wd, int has_mom, int first, int damp, int nesterov, int maximize) { \
  _Pragma("omp parallel for simd if(n > 32768)") \
  for (i64 i = 0; i < n; i++) { \
    T gi = maximize ? -g[i] : g[i]; \
    if (has_wd) gi = gi + p[i] * wd; \
    if (has_mom) { \
      T b = first ? gi : buf[i] * mom + (damp ? gi * omdamp : gi); \
      buf[i] = b; \
      gi = nesterov ? gi + b * mom : b; \
    } \
    p[i] = p[i] - gi * lr; \
  } \
}
SGD(ember_sgd_f32, float)
SGD(ember_sgd_f64, double)
/* Every float32 parameter of an SGD step in one parallel region, in chunks of 32K elements as
   ember_adam_all_f32. Per tensor: scalars lr, wd, momentum, 1 - dampening and flags has_wd,
   has_mom, first, damp, nesterov, maximize, as ember_sgd_f32 takes them. */
void ember_sgd_all_f32(i64 nt, float **p, float **g, float **buf, const i64 *n, const float *sc,
                       const int *fl) {
  i64 starts[nt + 1];
  chunk_starts(nt, n, starts);
  _Pragma("omp parallel for schedule(dynamic)")
  for (i64 c = 0; c < starts[nt]; c++) {
    i64 lo, hi, t = chunk_range(c, starts, n, &lo, &hi);
    const float lr = sc[4 * t], wd = sc[4 * t + 1], mom = sc[4 * t + 2], omdamp = sc[4 * t + 3];
    const int *f = fl + 6 * t;
    const int has_wd = f[0], has_mom = f[1], first = f[2], damp = f[3], nesterov = f[4], maximize = f[5];
    float *restrict pp = p[t], *restrict bb = buf[t];
    const float *restrict gg = g[t];
    _Pragma("omp simd")
    for (i64 i = lo; i < hi; i++) {
      float gi = maximize ? -gg[i] : gg[i];
      if (has_wd) gi = gi + pp[i] * wd;
      if (has_mom) {
        float b = first ? gi : bb[i] * mom + (damp ? gi * omdamp : gi);
        bb[i] = b;
        gi = nesterov ? gi + b * mom : b;
      }
      pp[i] = pp[i] - gi * lr;
    }
  }
}
"""
OPTIM_C = ADAM_C  # the C of every fused optimizer (one string, built with the kernels)


def _ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _fusable_adam(opt) -> bool:
    from ..optim.adam import Adam
    return type(opt).step is Adam.step and all(not g["amsgrad"] and not g["maximize"]
                                              for g in opt.param_groups)


def _fusable_sgd(opt) -> bool:
    from ..optim.sgd import SGD
    return type(opt).step is SGD.step


def fusable(opt) -> bool:
    """Whether `opt.step()` replays as fused C loops (else its own eager step runs)."""
    return _fusable_adam(opt) or _fusable_sgd(opt)


def run_optimizer_step(opt, params: list, grads: list, lib) -> None:
    """Replay `opt.step()` for `params` with gradient buffers `grads` (fused when it can)."""
    if lib is not None and _fusable_sgd(opt):
        _sgd_step(opt, params, grads, lib)
        return
    if lib is None or not _fusable_adam(opt):
        _eager_step(opt, params, grads)
        return
    from ..creation import zeros_like
    gmap = {id(p): g for p, g in zip(params, grads)}
    batch: list = []
    for group in opt.param_groups:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        for p in group["params"]:
            g = gmap.get(id(p))
            if g is None:
                continue
            state = opt.state.get(p)
            if not state:
                state = opt.state[p] = {"step": 0, "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}
            for key in ("exp_avg", "exp_avg_sq"):  # eager steps leave them in the gradient's layout
                if not state[key]._data.flags.c_contiguous:
                    state[key] = Tensor._make(np.ascontiguousarray(state[key]._data), p.dtype, p.device)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            g = np.ascontiguousarray(g)  # a weight's gradient is often a transposed matmul result
            bufs = (p._data, g, m._data, v._data)
            if not all(b.flags.c_contiguous and b.dtype == p._data.dtype for b in bufs) or \
                    p._data.dtype not in (np.float32, np.float64):
                _eager_step_one(opt, group, p, g)
                continue
            state["step"] += 1
            t = state["step"]
            step_size = lr / (1 - beta1 ** t)
            update = step_size != 0
            c1 = 1 / (math.sqrt(1 - beta2 ** t) * step_size) if update else 0.0
            c2 = eps / step_size if update else 0.0
            mode = 0 if wd == 0 else (2 if group["decoupled_weight_decay"] else 1)
            scalars = (beta1, 1 - beta1, beta2, 1 - beta2, c1, c2, 1 - lr * wd, wd)
            if p._data.dtype == np.float32:  # all float32 tensors go in one call below
                batch.append((bufs, scalars, mode, int(update)))
            else:
                S = ctypes.c_double
                lib.ember_adam_f64(*(ctypes.c_void_p(_ptr(b)) for b in bufs), ctypes.c_longlong(p._data.size),
                                   *(S(x) for x in scalars), ctypes.c_int(mode), ctypes.c_int(update))
            p._vc[0] += 1
    if batch:
        _adam_all_f32(lib, batch)


def _adam_all_f32(lib, batch) -> None:
    """One ember_adam_all_f32 call for [(p, g, m, v buffers), scalars, mode, update] of every tensor."""
    nt = len(batch)
    ptrs = [(ctypes.c_void_p * nt)(*(_ptr(b[0][j]) for b in batch)) for j in range(4)]
    sizes = np.array([b[0][0].size for b in batch], np.int64)
    scalars = np.array([b[1] for b in batch], np.float32)  # rounded to float32 as ember_adam_f32's are
    modes = np.array([b[2] for b in batch], np.intc)
    updates = np.array([b[3] for b in batch], np.intc)
    lib.ember_adam_all_f32(ctypes.c_longlong(nt), *ptrs, *(ctypes.c_void_p(_ptr(a)) for a in
                                                           (sizes, scalars, modes, updates)))


def _sgd_step(opt, params, grads, lib) -> None:
    gmap = {id(p): g for p, g in zip(params, grads)}
    batch: list = []  # float32 tensors: one ember_sgd_all_f32 call
    for group in opt.param_groups:
        lr, mom, damp, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        for p in group["params"]:
            g = gmap.get(id(p))
            if g is None:
                continue
            g = np.ascontiguousarray(g)
            if not p._data.flags.c_contiguous or g.dtype != p._data.dtype or \
                    p._data.dtype not in (np.float32, np.float64):
                _eager_step_one(opt, group, p, g)
                continue
            first = False
            buf = np.empty(0, p._data.dtype)
            if mom != 0:
                state = opt.state.setdefault(p, {})
                if state.get("momentum_buffer") is None:
                    first = True
                    state["momentum_buffer"] = Tensor._make(np.empty_like(p._data), p.dtype, p.device)
                elif not state["momentum_buffer"]._data.flags.c_contiguous:
                    b = state["momentum_buffer"]
                    state["momentum_buffer"] = Tensor._make(np.ascontiguousarray(b._data), p.dtype, p.device)
                buf = state["momentum_buffer"]._data
            scalars = (lr, wd, mom, 1 - damp)
            flags = (wd != 0, mom != 0, first, damp != 0, bool(group["nesterov"]), bool(group["maximize"]))
            if p._data.dtype == np.float32:
                batch.append(((p._data, g, buf), scalars, flags))
            else:
                S, I = ctypes.c_double, ctypes.c_int
                lib.ember_sgd_f64(*(ctypes.c_void_p(_ptr(b)) for b in (p._data, g, buf)),
                                  ctypes.c_longlong(p._data.size), *(S(x) for x in scalars), *(I(f) for f in flags))
            p._vc[0] += 1
    if batch:
        nt = len(batch)
        ptrs = [(ctypes.c_void_p * nt)(*(_ptr(b[0][j]) for b in batch)) for j in range(3)]
        sizes = np.array([b[0][0].size for b in batch], np.int64)
        scalars = np.array([b[1] for b in batch], np.float32)  # rounded to float32 as ember_sgd_f32's are
        flags = np.array([b[2] for b in batch], np.intc)
        lib.ember_sgd_all_f32(ctypes.c_longlong(nt), *ptrs,
                              *(ctypes.c_void_p(_ptr(a)) for a in (sizes, scalars, flags)))


def _eager_step(opt, params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = Tensor._make(g, p.dtype, p.device)
    opt.step()


def _eager_step_one(opt, group, p, g) -> None:
    """Run the eager step for `p` alone (other parameters hide their gradients meanwhile)."""
    saved = [(q, q.grad) for grp in opt.param_groups for q in grp["params"]]
    for q, _ in saved:
        q.grad = None
    p.grad = Tensor._make(g, p.dtype, p.device)
    opt.step()
    for q, gq in saved:
        q.grad = gq
