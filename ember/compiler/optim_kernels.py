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
from typing import NamedTuple

import numpy as np

from ..tensor import Tensor
from .library import Addresses

# The float32 Adam and SGD updates of a span of elements, which the all-tensor loops below call per
# chunk. Scalars go into locals first: read through pointers inside the loop, GCC must assume the
# stores change them and keeps the loop scalar.
UPDATE_C = """
/* p, m, v (n elements) after one Adam/AdamW step with gradient g; sc: b1, 1-b1, b2, 1-b2, c1, c2,
   shrink, wd; mode 0 none, 1 L2 (wd added to the gradient), 2 decoupled (p shrunk first) */
static void adam_span(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, i64 n,
                      const float *sc, int mode, int update_p) {
  const float b1 = sc[0], omb1 = sc[1], b2 = sc[2], omb2 = sc[3], c1 = sc[4], c2 = sc[5], shrink = sc[6];
  const float wd = sc[7];
  _Pragma("omp simd")  /* and sqrtf then vectorises (without it GCC keeps the libm call: errno) */
  for (i64 i = 0; i < n; i++) {
    float pi = p[i], gi = g[i];
    if (mode == 2) pi = pi * shrink; else if (mode == 1) gi = gi + pi * wd;
    float mi = m[i] * b1 + gi * omb1;
    float vi = v[i] * b2 + gi * gi * omb2;
    m[i] = mi; v[i] = vi;
    if (update_p) pi = pi - mi / (sqrtf(vi) * c1 + c2);
    p[i] = pi;
  }
}
/* p and the momentum buffer (n elements) after one SGD step with gradient g; sc: lr, wd, momentum,
   1 - dampening; fl: has_wd, has_mom, first, damp, nesterov, maximize (buf unused without momentum) */
static void sgd_span(float *restrict p, const float *restrict g, float *restrict buf, i64 n, const float *sc,
                     const int *fl) {
  const float lr = sc[0], wd = sc[1], mom = sc[2], omdamp = sc[3];
  const int has_wd = fl[0], has_mom = fl[1], first = fl[2], damp = fl[3], nesterov = fl[4], maximize = fl[5];
  _Pragma("omp simd")
  for (i64 i = 0; i < n; i++) {
    float gi = maximize ? -g[i] : g[i];
    if (has_wd) gi = gi + p[i] * wd;
    if (has_mom) {
      float b = first ? gi : buf[i] * mom + (damp ? gi * omdamp : gi);
      buf[i] = b;
      gi = nesterov ? gi + b * mom : b;
    }
    p[i] = p[i] - gi * lr;
  }
}
"""

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
    adam_span(p[t] + lo, g[t] + lo, m[t] + lo, v[t] + lo, hi - lo, sc + 8 * t, mode[t], update_p[t]);
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
    sgd_span(p[t] + lo, g[t] + lo, fl[6 * t + 1] ? buf[t] + lo : buf[t], hi - lo, sc + 4 * t, fl + 6 * t);
  }
}
"""
OPTIM_C = UPDATE_C + ADAM_C  # the C of every fused optimizer (one string, built with the kernels)


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


class UpdateJob(NamedTuple):
    """One parameter's fused update for this step: `kind` "adam" (buffers p, m, v; 8 scalars;
    flags mode, update_p) or "sgd" (buffers p, momentum buffer; 4 scalars; 6 flags), as the C loops
    (UPDATE_C) take them."""
    kind: str
    bufs: tuple
    scalars: tuple
    flags: tuple


def update_job(opt, group: dict, p, sgd: bool | None = None) -> UpdateJob | None:
    """p's fused update by `opt` (a fusable Adam/AdamW or SGD) in `group` for one step, prepared as
    `opt.step()` prepares it: state created, Adam's step counted, p's version bumped. None, with
    nothing touched, where the fused loops cannot take p (not a contiguous float32 or float64
    tensor): its eager step must run then. `sgd`: whether opt is the SGD (else Adam), if known."""
    if p._data.dtype not in (np.float32, np.float64) or not p._data.flags.c_contiguous:
        return None
    if _fusable_sgd(opt) if sgd is None else sgd:
        lr, mom, damp, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
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
        p._vc[0] += 1
        return UpdateJob("sgd", (p._data, buf), (lr, wd, mom, 1 - damp),
                         (wd != 0, mom != 0, first, damp != 0, bool(group["nesterov"]), bool(group["maximize"])))
    from ..creation import zeros_like
    lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    state = opt.state.get(p)
    if not state:
        state = opt.state[p] = {"step": 0, "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}
    for key in ("exp_avg", "exp_avg_sq"):  # eager steps leave them in the gradient's layout
        if not state[key]._data.flags.c_contiguous:
            state[key] = Tensor._make(np.ascontiguousarray(state[key]._data), p.dtype, p.device)
    state["step"] += 1
    t = state["step"]
    step_size = lr / (1 - beta1 ** t)
    update = step_size != 0
    c1 = 1 / (math.sqrt(1 - beta2 ** t) * step_size) if update else 0.0
    c2 = eps / step_size if update else 0.0
    mode = 0 if wd == 0 else (2 if group["decoupled_weight_decay"] else 1)
    p._vc[0] += 1
    return UpdateJob("adam", (p._data, state["exp_avg"]._data, state["exp_avg_sq"]._data),
                     (beta1, 1 - beta1, beta2, 1 - beta2, c1, c2, 1 - lr * wd, wd), (mode, int(update)))


def run_optimizer_step(opt, params: list, grads: list, lib, addresses: Addresses | None = None) -> None:
    """Replay `opt.step()` for `params` with gradient buffers `grads` (fused when it can): float32
    parameters in one call of the all-tensor loop, float64 ones one call each. `addresses`: a
    call site's cache of the parameters' and state's addresses."""
    sgd = _fusable_sgd(opt)
    if lib is None or not (sgd or _fusable_adam(opt)):
        _eager_step(opt, params, grads)
        return
    addr = addresses if addresses is not None else (lambda slot, a: _ptr(a))
    gmap = {id(p): g for p, g in zip(params, grads)}
    batch: list = []  # (job, gradient) of every float32 tensor
    for group in opt.param_groups:
        for p in group["params"]:
            g = gmap.get(id(p))
            if g is None:
                continue
            g = np.ascontiguousarray(g)  # a weight's gradient is often a transposed matmul result
            job = update_job(opt, group, p, sgd) if g.dtype == p._data.dtype else None
            if job is None:
                _eager_step(opt, [p], [g])
            elif p._data.dtype == np.float64:
                _step_f64(job, g, lib)
            else:
                batch.append((job, g))
    if not batch:
        return
    nt = len(batch)
    adam = batch[0][0].kind == "adam"  # one optimizer: all its jobs are of one kind
    sizes = np.array([job.bufs[0].size for job, _ in batch], np.int64)
    # scalars rounded to float32 as the float32 loops use them
    scalars = np.array([job.scalars for job, _ in batch], np.float32)
    stay = [[job.bufs[j] for job, _ in batch] for j in range(len(batch[0][0].bufs))]  # p and its state
    ptrs = [(ctypes.c_void_p * nt)(*(addr((j, t), b) for t, b in enumerate(col))) for j, col in enumerate(stay)]
    ptrs.insert(1, (ctypes.c_void_p * nt)(*(_ptr(g) for _, g in batch)))  # gradients: new each step
    flags = np.array([job.flags for job, _ in batch], np.intc)
    if adam:  # per tensor: mode, update_p
        args = (sizes, scalars, flags[:, 0].copy(), flags[:, 1].copy())
        lib.ember_adam_all_f32(ctypes.c_longlong(nt), *ptrs, *(ctypes.c_void_p(_ptr(a)) for a in args))
    else:
        args = (sizes, scalars, flags)
        lib.ember_sgd_all_f32(ctypes.c_longlong(nt), *ptrs, *(ctypes.c_void_p(_ptr(a)) for a in args))


def _step_f64(job: UpdateJob, g: np.ndarray, lib) -> None:
    """A float64 parameter's fused update: one call of the float64 loop."""
    S, I = ctypes.c_double, ctypes.c_int
    fn = lib.ember_adam_f64 if job.kind == "adam" else lib.ember_sgd_f64
    p, *state = job.bufs
    fn(*(ctypes.c_void_p(_ptr(b)) for b in (p, g, *state)), ctypes.c_longlong(p.size),
       *(S(x) for x in job.scalars), *(I(int(f)) for f in job.flags))


def _eager_step(opt, params, grads) -> None:
    """opt.step() for `params` with gradient buffers `grads` alone: every other parameter's gradient
    is hidden meanwhile (its update is the fused loops' or not this step's)."""
    mine = {id(p) for p in params}
    saved = [(q, q.grad) for grp in opt.param_groups for q in grp["params"] if id(q) not in mine]
    for q, _ in saved:
        q.grad = None
    for p, g in zip(params, grads):
        p.grad = Tensor._make(g, p.dtype, p.device)
    opt.step()
    for q, gq in saved:
        q.grad = gq
