"""library.c's im2col / col2im against the registry's NumPy kernels (ops/nn.py): same values, bit
for bit, and the same output layout (fused kernels downstream were generated for that layout); the
choice of BLAS (its matmul and attention are tested under each in tests/ops/test_attention.py)."""

import numpy as np
import pytest

from ember.compiler import library
from ember.ops import nn as nn_ops

CASES = [((2, 3, 9, 8), dict(kernel=(3, 3), dilation=(1, 1), padding=((1, 1), (1, 1)), stride=(1, 1), value=0.0)),
         ((2, 4, 10, 10), dict(kernel=(2, 3), dilation=(2, 1), padding=((0, 1), (2, 0)), stride=(2, 1), value=-1.5)),
         ((2, 4, 8, 8), dict(kernel=(2, 2), dilation=(1, 1), padding=((0, 0), (0, 0)), stride=(2, 2), value=0.0)),
         ((3, 1, 7, 6), dict(kernel=(3, 2), dilation=(1, 2), padding=((1, 2), (0, 1)), stride=(1, 2), value=0.5))]


@pytest.fixture
def lib(c_library):
    return c_library


@pytest.mark.parametrize("shape,kw", CASES)
def test_unfold_and_fold_equal_the_numpy_kernels(lib, shape, kw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for xx in (x, channels_last):
        want, got = nn_ops.Unfold.forward(np, xx, **kw), library.unfold(lib, xx, **kw)
        assert got.shape == want.shape and got.strides == want.strides
        np.testing.assert_array_equal(got, want)
    fold_kw = {k: v for k, v in kw.items() if k != "value"}
    cols = rng.standard_normal(want.shape, dtype=np.float32)
    for cc in (cols, np.ascontiguousarray(cols.transpose(0, 2, 1)).transpose(0, 2, 1)):
        want = nn_ops.Fold.forward(np, cc, output_size=shape[2:], **fold_kw)
        got = library.fold(lib, cc, shape[2:], **fold_kw)
        assert got.shape == want.shape and got.strides == want.strides
        np.testing.assert_array_equal(got, want)
    assert library.unfold(lib, x.astype(np.float64), **kw) is None  # float64 stays with NumPy


@pytest.mark.parametrize("shape,kw", CASES)
def test_max_pool2d_equals_the_numpy_kernel_including_nan_and_ties(lib, shape, kw):
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal(shape) * 2).astype(np.float32)  # rounded: many ties
    x[0, 0, 1, 1] = np.nan
    if shape[1] > 1:  # NCHW with channels apart: left to NumPy
        assert library.max_pool2d(lib, x, **{k: v for k, v in kw.items() if k != "value"}) is None
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels last, as convs leave it
    pool_kw = {k: v for k, v in kw.items() if k != "value"}
    want_out, want_arg = nn_ops.MaxPool2d.forward(np, x, **pool_kw)
    got_out, got_arg = library.max_pool2d(lib, x, **pool_kw)
    assert got_out.strides == want_out.strides and got_arg.dtype == want_arg.dtype
    np.testing.assert_array_equal(got_out, want_out)  # NaN where NumPy has NaN
    np.testing.assert_array_equal(got_arg, want_arg)


@pytest.mark.parametrize("shape,kw", CASES)
def test_max_pool2d_backward_equals_the_numpy_kernel(lib, shape, kw):
    rng = np.random.default_rng(2)
    pool_kw = {k: v for k, v in kw.items() if k != "value"}
    x = np.ascontiguousarray(rng.standard_normal(shape, dtype=np.float32).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    out, arg = nn_ops.MaxPool2d.forward(np, x, **pool_kw)
    g = rng.standard_normal(out.shape, dtype=np.float32)
    want = nn_ops.MaxPool2dBackward.forward(np, g, arg, shape[2:], **pool_kw)
    got = library.max_pool2d_backward(lib, g, arg, shape[2:], **pool_kw)
    assert got.shape == want.shape and got.strides == want.strides
    # overlapping windows may add a cell's contributions in another order: equal up to rounding
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if pool_kw["stride"] == pool_kw["kernel"]:  # disjoint windows: one contribution per cell, bit for bit
        np.testing.assert_array_equal(got, want)


def test_find_blas_honours_ember_blas_and_rejects_unknown_names(monkeypatch):
    monkeypatch.setattr(library, "_blas", {})
    monkeypatch.setenv("EMBER_BLAS", "openblas")
    blas = library.find_blas()
    assert blas is not None and blas.name == "openblas" and "openblas" in blas.path.lower()
    monkeypatch.setenv("EMBER_BLAS", "atlas")
    with pytest.raises(ValueError, match="EMBER_BLAS='atlas': expected 'mkl' or 'openblas'"):
        library.find_blas()


def test_mkl_is_preferred_when_installed_and_loaded_single_threaded(monkeypatch):
    monkeypatch.setattr(library, "_blas", {})
    monkeypatch.delenv("EMBER_BLAS", raising=False)
    mkl = library.find_blas("mkl")
    if mkl is None:
        pytest.skip("the mkl wheel is not installed (pip install ember[mkl])")
    assert library.find_blas()[:3] == mkl[:3]  # name, path, sgemm address
    # the sequential layer: inside our OpenMP regions MKL must not start threads of its own
    assert mkl.dll.MKL_Set_Threading_Layer(1) == 1 and mkl.set_threads is None


@pytest.mark.parametrize("min_parallel", [0, 1 << 40])  # threads split rows or columns, or one thread
def test_matmul_act_backward_equals_the_registry_op(blas_library, monkeypatch, min_parallel):
    """Each activation backward applied to the product, with and without the bias-gradient sum,
    tall and wide products, operands read transposed; against MatmulActBackward.forward (NumPy)."""
    from ember.ops.linalg import EPILOGUE_ACTIVATION_GRADS, MatmulActBackward
    monkeypatch.setattr(library, "NUMPY_MATMUL", 0)
    rng = np.random.default_rng(4)
    for M, K, N in ((37, 20, 24), (6, 16, 70)):  # rows split (tall), columns split (wide)
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((N, K), dtype=np.float32).T  # a transposed weight, as linear layers pass it
        for act in EPILOGUE_ACTIVATION_GRADS:
            # s: the activation's input, or its output for tanh and sigmoid; laid out (2, M*N/2) here
            s = rng.standard_normal((M, N), dtype=np.float32)
            s = (np.tanh(s) if act == "tanh" else 1 / (1 + np.exp(-s)) if act == "sigmoid" else s).reshape(2, -1)
            for with_sum in (False, True):
                dh, db = library.matmul_act_backward(blas_library, a, b, s, act, with_sum)
                want_dh, want_db = MatmulActBackward.forward(np, a, b, s, act=act, with_sum=with_sum)
                np.testing.assert_allclose(dh, want_dh, rtol=1e-5, atol=1e-5)
                if with_sum:
                    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-4)
                else:
                    assert db is None
    assert library.matmul_act_backward(blas_library, a.astype(np.float64), b, s, "relu", True) is None


def test_long_k_products_split_along_k_equal_numpy(blas_library, monkeypatch):
    """Weight-gradient shaped products (K >= 4 max(M, N)) are split along K over the threads and the
    partial products added: against NumPy, with A read transposed (X^T) or not, on one thread too."""
    rng = np.random.default_rng(7)
    monkeypatch.setattr(library, "NUMPY_MATMUL", 0)
    for min_parallel in (0, 1 << 40):
        monkeypatch.setattr(library, "SMALL_MATMUL", min_parallel)
        for M, K, N in ((16, 2048, 24), (33, 1000, 7), (5, 4096, 64)):
            x = rng.standard_normal((K, M), dtype=np.float32)
            dy = rng.standard_normal((K, N), dtype=np.float32)
            for a in (x.T, np.ascontiguousarray(x.T)):
                got = library.matmul(blas_library, a, dy)
                np.testing.assert_allclose(got, a.astype(np.float64) @ dy, rtol=1e-4, atol=1e-3)


def test_the_gelu_epilogues_against_float64_and_eagers_nan_and_inf(monkeypatch):
    """The GELU (tanh) epilogues, forward and backward, computed through sigmoid(2u) (library.c's
    AVX-512 path, else the tanhf loops) are at least as close to a float64 reference as the eager
    formula, over x in [-12, 12] (both sides of the cancellation in 1 + tanh u), and give NaN and
    infinity where eager's 0.5 x (1 + tanh u) and its derivative do."""
    lib = library.load()
    if lib is None:
        pytest.skip("needs library.c (a C compiler and a BLAS)")
    from ember.ops.linalg import MatmulActBackward, MatmulBiasAct
    monkeypatch.setattr(library, "NUMPY_MATMUL", 0)
    x = np.linspace(-12, 12, 64 * 37, dtype=np.float32).reshape(64, 37)  # rows not a multiple of 16
    eye = np.eye(37, dtype=np.float32)
    xd = x.astype(np.float64)
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (xd + 0.044715 * xd ** 3))
    want_y = 0.5 * xd * (1 + t)
    want_d = 0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * c * (1 + 3 * 0.044715 * xd * xd)
    y, h = library.matmul(lib, x, eye, None, "gelu_tanh")
    eager_y, _ = MatmulBiasAct.forward(np, x, eye, np.zeros(37, np.float32), act="gelu_tanh")
    d, _ = library.matmul_act_backward(lib, np.ones((64, 37), np.float32), eye, x, "gelu_tanh", False)
    eager_d, _ = MatmulActBackward.forward(np, np.ones((64, 37), np.float32), eye, x, act="gelu_tanh",
                                           with_sum=False)
    assert np.array_equal(h, x)
    assert np.abs(y - want_y).max() <= max(np.abs(eager_y - want_y).max(), 2e-6)
    assert np.abs(d - want_d).max() <= max(np.abs(eager_d - want_d).max(), 5e-7)
    special = np.array([[np.inf, -np.inf, np.nan, 0.0, 1e-30, -30.0, 30.0, 3e38, -3e38] + [1.0] * 7], np.float32)
    eye16 = np.eye(16, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        y, _ = library.matmul(lib, special, eye16, None, "gelu_tanh")
        d, _ = library.matmul_act_backward(lib, np.ones((1, 16), np.float32), eye16, special, "gelu_tanh", False)
        ey, _ = MatmulBiasAct.forward(np, special, eye16, np.zeros(16, np.float32), act="gelu_tanh")
        ed, _ = MatmulActBackward.forward(np, np.ones((1, 16), np.float32), eye16, special, act="gelu_tanh",
                                          with_sum=False)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ey))
    np.testing.assert_array_equal(np.isnan(d), np.isnan(ed))
    np.testing.assert_allclose(y[~np.isnan(y)], ey[~np.isnan(ey)], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d[~np.isnan(d)], ed[~np.isnan(ed)], rtol=1e-5, atol=1e-6)
