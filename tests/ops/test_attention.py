"""The fused attention op (ops/attention.py): the path F.scaled_dot_product_attention takes for 4-D
inputs of one shape without mask or dropout. Against PyTorch, float64 finite differences and the
composite (unfused) formula; its library kernel (compiler/attention.c) against the eager op."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import ember
import ember.nn.functional as F
from ember.compiler import library, toolchain
from ember.ops import attention as attention_ops
from tests.helpers import check_op, gradcheck, gradgradcheck


def _heads(lib, x, B, T, H):
    """Split a (B, T, 3*H*E) projection into head-major q, k, v views, as the GPT does."""
    C = x.shape[-1] // 3
    q, k, v = x.split(C, dim=2)
    return [t.reshape(B, T, H, C // H).transpose(1, 2) for t in (q, k, v)]


@pytest.mark.parametrize("kw", [dict(), dict(is_causal=True), dict(scale=0.3, is_causal=True)])
def test_fused_attention_on_head_split_views_matches_torch(kw):
    def fn(lib, x):
        q, k, v = _heads(lib, x, 2, 7, 3)
        y = (F if lib is ember else TF).scaled_dot_product_attention(q, k, v, **kw)
        if lib is ember:
            assert y.grad_fn.op.name == "sdpa"  # the fused op, not the composite
        return y
    check_op(fn, [(2, 7, 36)])


def test_fused_attention_first_and_second_derivatives_float64():
    rng = np.random.default_rng(0)
    q, k, v = (rng.uniform(-1, 1, size=(1, 2, 4, 3)) for _ in range(3))
    for causal in (False, True):
        fn = lambda q, k, v, c=causal: F.scaled_dot_product_attention(q, k, v, is_causal=c)  # noqa: E731
        gradcheck(fn, [q, k, v])
        gradgradcheck(fn, [q, k, v], atol=1e-5, rtol=1e-4)


def test_fused_and_composite_attention_agree():
    x = ember.randn(2, 5, 24, requires_grad=True)
    w = ember.randn(2, 2, 5, 4)
    outs = []
    for fused in (True, False):
        x.grad = None
        q, k, v = _heads(ember, x, 2, 5, 2)
        if fused:
            y = attention_ops.sdpa(q, k, v, 0.5, True)
        else:  # the same attention from separate ops
            s = ((q * 0.5) @ k.mT).masked_fill(ember.ones(5, 5).tril() == 0, float("-inf"))
            y = F.softmax(s, -1) @ v
        (y * w).sum().backward()
        outs.append((y.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [ember.float16, ember.bfloat16])
def test_fused_attention_keeps_a_low_precision_dtype(dtype):
    q = ember.randn(1, 2, 4, 8).to(dtype)
    y = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    ref = TF.scaled_dot_product_attention(*(torch.from_numpy(q.float().numpy()),) * 3, is_causal=True)
    assert y.dtype is dtype
    np.testing.assert_allclose(y.float().numpy(), ref.numpy(), atol=2e-2, rtol=2e-2)


def test_masks_dropout_and_uneven_shapes_take_the_composite():
    q = ember.randn(1, 2, 4, 8, requires_grad=True)
    k = ember.randn(1, 2, 6, 8, requires_grad=True)
    assert F.scaled_dot_product_attention(q, k, k).grad_fn.op.name != "sdpa"
    mask = ember.ones(4, 4, dtype=ember.bool)
    assert F.scaled_dot_product_attention(q, q, q, attn_mask=mask).grad_fn.op.name != "sdpa"
    assert F.scaled_dot_product_attention(q, q, q).grad_fn.op.name == "sdpa"


# --- the library kernels the compiler calls ---------------------------------------------------

@pytest.fixture
def lib(blas_library):
    return blas_library


def test_library_attention_equals_the_eager_op(lib, monkeypatch):
    monkeypatch.setattr(library, "NUMPY_MATMUL", 0)  # small test shapes, through the library all the same
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 70, 3, 2, 4), dtype=np.float32)  # (B, T, qkv, H, E): T spans 3 causal blocks
    heads = [x[:, :, i].transpose(0, 2, 1, 3) for i in range(3)]  # strided head views
    columns = [np.ascontiguousarray(h.swapaxes(-1, -2)).swapaxes(-1, -2) for h in heads]  # column-major
    op = attention_ops.ScaledDotProductAttention
    for causal, (q, k, v) in ((False, heads), (True, heads), (True, columns)):
        ref_out, ref_p = op.forward(np, q, k, v, scale=0.4, causal=causal)
        out, p = library.sdpa_forward(lib, q, k, v, 0.4, causal)
        np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(p, ref_p, rtol=1e-5, atol=1e-7)
        g = rng.standard_normal(out.shape, dtype=np.float32)
        ref = attention_ops.ScaledDotProductAttentionBackward.forward(np, g, q, k, v, ref_p, scale=0.4,
                                                                      causal=causal)
        got = library.sdpa_backward(lib, g, q, k, v, p, 0.4, causal)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("min_parallel", [0, 1 << 20])  # threads split the work, or one thread does it all
def test_library_matmul_reads_strided_operands_without_copies(lib, monkeypatch, min_parallel):
    monkeypatch.setattr(library, "SMALL_MATMUL", min_parallel)
    monkeypatch.setattr(library, "NUMPY_MATMUL", 0)  # even these small products through the library
    rng = np.random.default_rng(2)
    a = rng.standard_normal((40, 24), dtype=np.float32)
    b = rng.standard_normal((24, 33), dtype=np.float32)
    x = rng.standard_normal((2, 9, 3, 2, 4), dtype=np.float32)
    q, k = (x[:, :, i].transpose(0, 2, 1, 3) for i in range(2))
    bias = rng.standard_normal(33, dtype=np.float32)
    cases = [(a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b)), (a[::1, :12], b[:12]),
             (q, k.swapaxes(-1, -2)), (rng.standard_normal((3, 40, 24), dtype=np.float32), b)]
    wide = rng.standard_normal((24, 50), dtype=np.float32)  # wider than tall: split by columns
    cases += [(a[:7], wide), (a[:7], np.asfortranarray(wide)), (np.asfortranarray(a[:7]), wide)]
    for x1, x2 in cases:
        np.testing.assert_allclose(library.matmul(lib, x1, x2), x1 @ x2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(library.matmul(lib, a, b, bias), a @ b + bias, rtol=1e-5, atol=1e-5)
    bias50 = rng.standard_normal(50, dtype=np.float32)
    np.testing.assert_allclose(library.matmul(lib, a[:7], wide, bias50), a[:7] @ wide + bias50, rtol=1e-5, atol=1e-5)
    # activation epilogues: (act(h), h) with h = a @ b + bias, act as the registry computes it
    from ember.ops.linalg import EPILOGUE_ACTIVATIONS, MatmulBiasAct
    for x1, x2, bb in ((a, b, bias), (a[:7], wide, bias50)):
        for act in EPILOGUE_ACTIVATIONS:
            y, h = library.matmul(lib, x1, x2, bb, act)
            want_y, want_h = MatmulBiasAct.forward(np, x1, x2, bb, act=act)
            np.testing.assert_allclose(h, want_h, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-5)
    # layouts BLAS cannot read (no unit stride in the matrix) are left to NumPy
    assert library.matmul(lib, a[:, ::2], b[:12]) is None
    assert library.matmul(lib, a.astype(np.float64), b) is None


def _matches_the_eager_op(lib, q, k, v, scale, causal, rng):
    """library.sdpa_forward (and, where L == S and E == Ev, sdpa_backward) equal the registry's NumPy
    kernels on these inputs."""
    op = attention_ops.ScaledDotProductAttention
    ref_out, ref_p = op.forward(np, q, k, v, scale=scale, causal=causal)
    out, p = library.sdpa_forward(lib, q, k, v, scale, causal)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p, ref_p, rtol=1e-5, atol=1e-7)
    if q.shape == k.shape == v.shape:
        g = rng.standard_normal(out.shape, dtype=np.float32)
        ref = attention_ops.ScaledDotProductAttentionBackward.forward(np, g, q, k, v, ref_p, scale=scale,
                                                                      causal=causal)
        got = library.sdpa_backward(lib, g, q, k, v, p, scale, causal)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
        # with the qkv bias gradient: the same gradients, and their sum over B and L as the op gives it
        got2, dbias = library.sdpa_backward(lib, g, q, k, v, p, scale, causal, with_sum=True)
        ref2, ref_sum = attention_ops.ScaledDotProductAttentionBackwardSum.forward(np, g, q, k, v, ref_p, scale=scale,
                                                                                   causal=causal)
        np.testing.assert_array_equal(got2, got)
        assert dbias.shape == ref_sum.shape == (3, q.shape[1], q.shape[3])
        np.testing.assert_allclose(dbias, ref_sum, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dbias, got.astype(np.float64).sum(axis=(1, 3)), rtol=1e-6, atol=1e-6)


def _odd_attention_cases(rng):
    """(q, k, v) the tiled kernels must get right: sizes that are not whole vectors or tiles, L != S,
    E != Ev, strided head views and column-major heads, several query blocks per head, and a head too
    wide for the tiles (E > 128: the BLAS path)."""
    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    def views(B, T, H, E):
        x = normal(B, T, 3, H, E)
        return [x[:, :, i].transpose(0, 2, 1, 3) for i in range(3)]
    cases = [(normal(2, 3, 37, 20), normal(2, 3, 50, 20), normal(2, 3, 50, 24)),  # S > L
             (normal(2, 3, 50, 20), normal(2, 3, 37, 20), normal(2, 3, 37, 24)),  # S < L
             (normal(1, 2, 37, 8), normal(1, 2, 300, 8), normal(1, 2, 300, 3)),  # several query blocks
             views(2, 37, 3, 20), views(1, 150, 2, 16), views(1, 33, 2, 48), views(1, 40, 1, 136)]
    heads = views(1, 37, 2, 20)
    cases.append([np.ascontiguousarray(h.swapaxes(-1, -2)).swapaxes(-1, -2) for h in heads])  # column-major
    return cases


@pytest.mark.parametrize("causal", [False, True])
def test_library_attention_odd_shapes_equal_the_eager_op(lib, monkeypatch, causal):
    monkeypatch.setattr(library, "NUMPY_MATMUL", 0)
    rng = np.random.default_rng(3)
    for q, k, v in _odd_attention_cases(rng):
        _matches_the_eager_op(lib, q, k, v, q.shape[-1] ** -0.5, causal, rng)


@pytest.mark.parametrize("march", [("-march=native", "-mno-avx512f"), ("-march=x86-64",)])
def test_library_attention_without_avx512_equals_the_eager_op(c_library, monkeypatch, march):
    """The portable tiles (8-float vectors with FMA, or SSE's 4-float ones), built here by turning
    AVX-512 off, on the same cases as the AVX-512 build."""
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the -march flags of this test are x86's")
    monkeypatch.setattr(toolchain, "FLAGS", march + tuple(f for f in toolchain.FLAGS if f != "-march=native"))
    monkeypatch.setattr(library, "NUMPY_MATMUL", 0)
    lib = toolchain.build(library.source())
    library._bind(lib, library.current_blas())  # the same BLAS as the default build: rebinding it is a no-op
    lib.ember_sdpa_fwd.restype = lib.ember_sdpa_bwd.restype = None
    rng = np.random.default_rng(4)
    for causal in (False, True):
        for q, k, v in _odd_attention_cases(rng):
            if q.shape[-1] <= 128:  # the wider head's BLAS path does not depend on the vector width
                _matches_the_eager_op(lib, q, k, v, q.shape[-1] ** -0.5, causal, rng)


def test_library_outputs_are_laid_out_as_merged_heads_and_the_op_as_pytorch(lib, monkeypatch):
    """The eager op returns contiguous tensors, as PyTorch's attention does; the library writes the
    forward output as (B, L, H, Ev) in memory (merging heads is then a view) and the backward's
    (3, B, H, L, E) stack as (B, L, 3, H, E) (one fused qkv projection's gradient), same values.
    A compiled function that returns the attention output gets it contiguous, as eager."""
    monkeypatch.setattr(library, "NUMPY_MATMUL", 0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 40, 3, 2, 8), dtype=np.float32)
    q, k, v = (x[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    g = rng.standard_normal((2, 2, 40, 8), dtype=np.float32)
    ref_out, ref_p = attention_ops.ScaledDotProductAttention.forward(np, q, k, v, scale=0.3, causal=True)
    out, p = library.sdpa_forward(lib, q, k, v, 0.3, True)
    ref_grads = attention_ops.ScaledDotProductAttentionBackward.forward(np, g, q, k, v, ref_p, scale=0.3, causal=True)
    grads = library.sdpa_backward(lib, g, q, k, v, p, 0.3, True)
    assert ref_out.flags.c_contiguous and ref_grads.flags.c_contiguous
    assert out.transpose(0, 2, 1, 3).flags.c_contiguous
    assert grads.transpose(1, 3, 0, 2, 4).flags.c_contiguous
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads, ref_grads, rtol=1e-4, atol=1e-5)
    tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(t)) for t in (q, k, v))
    assert TF.scaled_dot_product_attention(tq, tk, tv, is_causal=True).is_contiguous()
    eq, ek, ev = (ember.tensor(t) for t in (q, k, v))
    f = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    cf = ember.compile(f)
    cf(eq, ek, ev)
    got, want = cf(eq, ek, ev), f(eq, ek, ev)
    assert got._data.flags.c_contiguous and want._data.flags.c_contiguous
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
