"""ember.nn.functional against torch.nn.functional (forward and backward), float64 finite
differences (first and second order), dropout statistics and error messages."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from helpers import check_op, gradcheck, gradgradcheck, to_numpy

import ember
import ember.nn.functional as F
from ember.errors import DTypeError, IndexingError, ShapeError


def nnf(lib):
    return F if lib is ember else TF


def const(lib, a):
    """A NumPy array as a tensor of `lib` without gradient (targets, masks, class weights)."""
    a = np.array(a, copy=True)
    return ember.from_numpy(a) if lib is ember else torch.from_numpy(a)


def rand(*shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


# --- linear and convolutions ---------------------------------------------------------------------


@pytest.mark.parametrize("shapes", [[(4, 5), (3, 5), (3,)], [(2, 6, 5), (7, 5), (7,)], [(5,), (2, 5), (2,)]])
def test_linear_matches_torch(shapes):
    check_op(lambda lib, x, w, b: nnf(lib).linear(x, w, b), shapes)


CONV2D_CASES = [
    dict(),
    dict(padding=1),
    dict(stride=2, padding=(1, 2)),
    dict(stride=(2, 1), dilation=2, padding=2),
    dict(padding="same"),
    dict(padding="same", dilation=(2, 1)),
    dict(padding="valid", stride=3),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kw", CONV2D_CASES)
def test_conv2d_matches_torch(kw):
    check_op(lambda lib, x, w, b: nnf(lib).conv2d(x, w, b, **kw), [(2, 3, 9, 8), (4, 3, 3, 2), (4,)],
             atol=1e-5, rtol=1e-4)


GROUP_CASES = [(2, dict(padding=1)), (3, dict(stride=2)), (6, dict(padding=1, dilation=2))]


@pytest.mark.parametrize("groups,kw", GROUP_CASES)
def test_grouped_and_depthwise_conv2d_match_torch(groups, kw):
    check_op(lambda lib, x, w: nnf(lib).conv2d(x, w, groups=groups, **kw),
             [(2, 6, 7, 7), (6, 6 // groups, 3, 3)], atol=1e-5, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv2d_same_padding_with_even_kernel_matches_torch():
    check_op(lambda lib, x, w: nnf(lib).conv2d(x, w, padding="same"), [(1, 2, 6, 7), (3, 2, 4, 2)],
             atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(dilation=2, padding="same"),
                                dict(groups=2, padding=1)])
def test_conv1d_matches_torch(kw):
    w_in = 4 // kw.get("groups", 1)
    check_op(lambda lib, x, w, b: nnf(lib).conv1d(x, w, b, **kw), [(2, 4, 11), (6, w_in, 3), (6,)],
             atol=1e-5, rtol=1e-4)


CONVT_CASES = [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=2, dilation=2, padding=2),
    dict(stride=3, padding=1, output_padding=2),
    dict(stride=(2, 1), padding=(0, 1)),
    dict(dilation=3, output_padding=2),
]


@pytest.mark.parametrize("kw", CONVT_CASES)
def test_conv_transpose2d_matches_torch(kw):
    check_op(lambda lib, x, w, b: nnf(lib).conv_transpose2d(x, w, b, **kw),
             [(2, 4, 5, 6), (4, 3, 3, 2), (3,)], atol=1e-5, rtol=1e-4)


def test_grouped_conv_transpose2d_and_1d_match_torch():
    check_op(lambda lib, x, w: nnf(lib).conv_transpose2d(x, w, stride=2, groups=2, padding=1),
             [(2, 4, 4, 5), (4, 3, 3, 3)], atol=1e-5, rtol=1e-4)
    check_op(lambda lib, x, w: nnf(lib).conv_transpose1d(x, w, stride=2, output_padding=1),
             [(2, 3, 6), (3, 2, 3)], atol=1e-5, rtol=1e-4)


def test_unfold_and_fold_match_torch_ordering():
    kw = dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(2, 1))
    check_op(lambda lib, x: nnf(lib).unfold(x, **kw), [(2, 3, 7, 6)])
    n_blocks = TF.unfold(torch.zeros(1, 1, 7, 6), **kw).shape[-1]
    check_op(lambda lib, c: nnf(lib).fold(c, (7, 6), **kw), [(2, 3 * 6, n_blocks)])
    check_op(lambda lib, x: nnf(lib).unfold(x, 3), [(2, 5, 5)])  # unbatched


def test_unfold_and_fold_are_adjoint_and_twice_differentiable():
    x, c = rand(1, 2, 4, 5), rand(1, 2 * 4, 15, seed=1)
    ex, ec = ember.tensor(x), ember.tensor(c)
    # <unfold(x), c> == <x, fold(c)>: fold is unfold's adjoint, hence its backward
    lhs = (F.unfold(ex, 2, padding=1, stride=(1, 2)) * ec).sum().item()
    rhs = (ex * F.fold(ec, (4, 5), 2, padding=1, stride=(1, 2))).sum().item()
    assert abs(lhs - rhs) < 1e-9
    gradgradcheck(lambda x: F.unfold(x, 2, padding=1, stride=(1, 2)) ** 2, [x])
    gradgradcheck(lambda c: F.fold(c, (4, 5), 2, padding=1, stride=(1, 2)) ** 2, [c])


def test_half_precision_inputs_keep_their_dtype_and_agree_with_float32():
    x, w = ember.randn(2, 3, 8, 8), ember.randn(4, 3, 3, 3)
    ref = F.max_pool2d(F.conv2d(x, w, padding=1), 2).softmax(1)
    for d in (ember.float16, ember.bfloat16):
        out = F.max_pool2d(F.conv2d(x.to(d), w.to(d), padding=1), 2).softmax(1)
        assert out.dtype is d
        np.testing.assert_allclose(to_numpy(out.float()), to_numpy(ref), atol=5e-2)


def test_conv_gradchecks_float64():
    x, w, b = rand(1, 2, 5, 4), rand(3, 2, 3, 2, seed=1), rand(3, seed=2)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)), [x, w, b])
    gradcheck(lambda x, w: F.conv2d(x, w, groups=2, padding="same"),
              [rand(1, 4, 4, 4), rand(4, 2, 3, 3, seed=3)])
    gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
              [rand(1, 2, 3, 3), rand(2, 3, 3, 3, seed=4), b])
    gradcheck(lambda x, w: F.conv1d(x, w, padding=2, dilation=2), [rand(2, 2, 6), rand(2, 2, 3, seed=5)])
    gradcheck(lambda x: F.linear(x, ember.tensor(rand(3, 4, seed=6), dtype=ember.float64)), [rand(2, 4)])


def test_conv_second_derivatives_float64():
    gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1, stride=2),
                  [rand(1, 2, 4, 4), rand(2, 2, 3, 3, seed=1)], atol=1e-5, rtol=1e-4)
    gradgradcheck(lambda x, w: F.conv_transpose2d(x, w, stride=2),
                  [rand(1, 2, 2, 3), rand(2, 1, 2, 2, seed=2)], atol=1e-5, rtol=1e-4)


# --- pooling -------------------------------------------------------------------------------------


MAXPOOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=1, dilation=(2, 1)),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
]


@pytest.mark.parametrize("kw", MAXPOOL_CASES)
def test_max_pool2d_values_gradients_and_indices_match_torch(kw):
    check_op(lambda lib, x: nnf(lib).max_pool2d(x, **kw), [(2, 3, 9, 8)])
    x = rand(2, 3, 9, 8, seed=7).astype(np.float32)
    e_out, e_idx = F.max_pool2d(ember.tensor(x), return_indices=True, **kw)
    t_out, t_idx = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(to_numpy(e_idx), t_idx.numpy())
    np.testing.assert_array_equal(to_numpy(e_out), t_out.numpy())


def test_max_pool2d_gradient_goes_to_first_maximum_on_ties():
    x = np.zeros((1, 2, 4, 4), dtype=np.float32)
    x[0, 1, 1, 1] = x[0, 1, 0, 1] = 1.0  # ties in one window, all-zero windows elsewhere
    check_op(lambda lib, x: nnf(lib).max_pool2d(nnf(lib).relu(x), 2), None, inputs=[x])
    check_op(lambda lib, x: nnf(lib).max_pool2d(x, 3, 1, 1), None, inputs=[x])


def test_max_pool_1d_and_unbatched_match_torch():
    check_op(lambda lib, x: nnf(lib).max_pool1d(x, 3, 2, 1), [(2, 3, 10)])
    check_op(lambda lib, x: nnf(lib).max_pool2d(x, 2), [(3, 6, 6)])


AVGPOOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), divisor_override=4),
]


@pytest.mark.parametrize("kw", AVGPOOL_CASES)
def test_avg_pool2d_matches_torch(kw):
    check_op(lambda lib, x: nnf(lib).avg_pool2d(x, **kw), [(2, 3, 9, 8)])


@pytest.mark.parametrize("size", [1, 3, (4, 2), (9, 8), (5, 7), (None, 3)])
def test_adaptive_avg_pool2d_matches_torch(size):
    check_op(lambda lib, x: nnf(lib).adaptive_avg_pool2d(x, size), [(2, 3, 9, 8)])


def test_avg_pool1d_and_adaptive_avg_pool1d_match_torch():
    check_op(lambda lib, x: nnf(lib).avg_pool1d(x, 3, 2, 1, count_include_pad=False), [(2, 3, 10)])
    check_op(lambda lib, x: nnf(lib).adaptive_avg_pool1d(x, 4), [(2, 3, 10)])


def test_pooling_gradchecks_float64():
    gradcheck(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [rand(1, 2, 5, 6)])
    gradcheck(lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [rand(1, 2, 5, 6)])
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [rand(1, 2, 5, 7)])
    gradgradcheck(lambda x: F.max_pool2d(x, 2) * F.max_pool2d(x, 2), [rand(1, 1, 4, 4)])


# --- softmax family and normalisation ----------------------------------------------------------------


@pytest.mark.parametrize("shape,dim", [((5,), 0), ((3, 7), 1), ((2, 3, 4), 0), ((2, 3, 4), -1)])
def test_softmax_and_log_softmax_match_torch(shape, dim):
    check_op(lambda lib, x: nnf(lib).softmax(x * 5, dim), [shape])
    check_op(lambda lib, x: nnf(lib).log_softmax(x * 5, dim), [shape])
    check_op(lambda lib, x: nnf(lib).softmin(x, dim), [shape])


def test_softmax_handles_large_and_masked_inputs():
    x = np.array([[1000.0, 1001.0, -np.inf], [-1e4, 0.0, 3.0]], dtype=np.float32)
    check_op(lambda lib, x: nnf(lib).softmax(x, -1), None, inputs=[x])
    check_op(lambda lib, x: nnf(lib).log_softmax(x[:, :2], -1), None, inputs=[x])


def test_softmax_family_first_and_second_derivatives_float64():
    x = rand(3, 4) * 3
    for fn in (lambda x: F.softmax(x, -1), lambda x: F.log_softmax(x, 0)):
        gradcheck(fn, [x])
        gradgradcheck(fn, [x])


@pytest.mark.parametrize("shape,norm", [((4, 6), (6,)), ((2, 3, 4, 5), (4, 5)), ((2, 3, 5), 5)])
def test_layer_norm_and_rms_norm_match_torch(shape, norm):
    ns = (norm,) if isinstance(norm, int) else norm
    check_op(lambda lib, x, w, b: nnf(lib).layer_norm(x, ns, w, b), [shape, ns, ns], atol=1e-5, rtol=1e-4)
    check_op(lambda lib, x: nnf(lib).layer_norm(x, ns, eps=0.1), [shape], atol=1e-5, rtol=1e-4)
    check_op(lambda lib, x, w: nnf(lib).rms_norm(x, ns, w), [shape, ns], atol=1e-5, rtol=1e-4)
    check_op(lambda lib, x: nnf(lib).rms_norm(x, ns, eps=1e-3), [shape], atol=1e-5, rtol=1e-4)


def test_norm_first_and_second_derivatives_float64():
    x, w, b = rand(3, 5), rand(5, seed=1), rand(5, seed=2)
    gradcheck(lambda x, w, b: F.layer_norm(x, (5,), w, b), [x, w, b])
    gradcheck(lambda x, w: F.rms_norm(x, (5,), w), [x, w])
    gradgradcheck(lambda x, w, b: F.layer_norm(x, (5,), w, b), [x, w, b], atol=1e-5, rtol=1e-4)
    gradgradcheck(lambda x, w: F.rms_norm(x, (5,), w), [x, w], atol=1e-5, rtol=1e-4)
    gradgradcheck(lambda x: F.layer_norm(x, (2, 3)), [rand(2, 2, 3, seed=3)], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shape,groups", [((2, 6, 4, 3), 3), ((3, 4, 5), 2), ((2, 4), 4)])
def test_group_norm_matches_torch_and_gradchecks(shape, groups):
    C = shape[1]
    check_op(lambda lib, x, w, b: nnf(lib).group_norm(x, groups, w, b), [shape, (C,), (C,)],
             atol=1e-5, rtol=1e-4)
    gradcheck(lambda x, w, b: F.group_norm(x, groups, w, b), [rand(*shape), rand(C, seed=1), rand(C, seed=2)])


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 4, 4)])
def test_batch_norm_training_matches_torch_and_updates_running_stats(shape):
    C = shape[1]
    rm, rv = rand(C, seed=3), rand(C, seed=4, low=0.5, high=2.0)
    stats = {}

    def fn(lib, x, w, b):
        m, v = const(lib, rm.astype(np.float32).copy()), const(lib, rv.astype(np.float32).copy())
        stats[lib.__name__] = (m, v)
        return nnf(lib).batch_norm(x, m, v, w, b, training=True, momentum=0.3, eps=1e-3)

    check_op(fn, [shape, (C,), (C,)], atol=1e-5, rtol=1e-4)
    for e, t in zip(stats["ember"], stats["torch"]):
        np.testing.assert_allclose(to_numpy(e), t.numpy(), atol=1e-6, rtol=1e-5)
    assert not np.allclose(to_numpy(stats["ember"][0]), rm)  # really updated in place


def test_batch_norm_eval_uses_running_stats_and_gradchecks():
    C = 3
    rm, rv = rand(C, seed=3), rand(C, seed=4, low=0.5, high=2.0)
    check_op(lambda lib, x, w, b: nnf(lib).batch_norm(x, const(lib, rm.astype(np.float32)),
                                                      const(lib, rv.astype(np.float32)), w, b, False),
             [(4, 3, 2), (C,), (C,)], atol=1e-5, rtol=1e-4)
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
              [rand(4, 3, 2), rand(C), rand(C)])


def test_instance_norm_and_normalize_match_torch():
    check_op(lambda lib, x: nnf(lib).instance_norm(x), [(2, 3, 4, 5)], atol=1e-5, rtol=1e-4)
    check_op(lambda lib, x: nnf(lib).normalize(x, dim=-1), [(3, 5)])


# --- activations ----------------------------------------------------------------------------------


ACTIVATIONS = [("relu", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("silu", {}), ("sigmoid", {}),
               ("tanh", {}), ("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.7}),
               ("softplus", {"beta": 2.0}), ("logsigmoid", {}), ("mish", {}), ("relu6", {}), ("hardtanh", {}),
               ("glu", {})]


@pytest.mark.parametrize("name,kw", ACTIVATIONS)
def test_activations_match_torch(name, kw):
    check_op(lambda lib, x: getattr(nnf(lib), name)(x * 4, **kw), [(3, 8)])


def test_activation_and_misc_gradchecks_float64():
    x = rand(3, 4) * 3
    for name, kw in ACTIVATIONS:
        gradcheck(lambda x, name=name, kw=kw: getattr(F, name)(x, **kw), [x])
    idx = np.array([[0, 2], [2, 3]])
    gradcheck(lambda w: F.embedding(const(ember, idx), w), [rand(4, 3)])  # padding_idx: torch parity above
    gradcheck(lambda x: F.normalize(x, dim=1) + F.instance_norm(x.reshape(1, 3, 4)).reshape(3, 4), [x])
    gradcheck(lambda x, w: F.conv_transpose1d(x, w, stride=2, padding=1),
              [rand(1, 2, 4), rand(2, 3, 3, seed=1)])
    gradcheck(lambda x: F.max_pool1d(x, 2) + F.avg_pool1d(x, 2), [rand(1, 2, 6)])


def test_inplace_activation_modifies_input():
    x = ember.tensor([-1.0, 2.0])
    y = F.relu(x, inplace=True)
    assert y is x and x.tolist() == [0.0, 2.0]


# --- dropout --------------------------------------------------------------------------------------


def test_dropout_is_identity_when_p_is_zero_or_not_training():
    x = ember.randn(4, 5, requires_grad=True)
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 0.7, training=False) is x
    assert F.dropout2d(x.reshape(1, 4, 5, 1), 0.5, training=False).shape == (1, 4, 5, 1)
    assert not F.dropout(x, 1.0).detach().numpy().any()


def test_dropout_mask_rate_scaling_and_gradient():
    p = 0.3
    x = ember.ones(200, 500, requires_grad=True)
    y = F.dropout(x, p)
    vals = y.detach().numpy()
    kept = vals != 0
    assert abs(1 - kept.mean() - p) < 0.01  # 100k draws: std of the rate ~0.0015
    np.testing.assert_allclose(vals[kept], 1 / (1 - p), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), vals)  # gradient is the same scaled mask


def test_dropout_reproduces_with_the_same_seed():
    ember.manual_seed(123)
    a = F.dropout(ember.ones(50), 0.5).numpy()
    ember.manual_seed(123)
    b = F.dropout(ember.ones(50), 0.5).numpy()
    c = F.dropout(ember.ones(50), 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_dropout2d_drops_whole_channels():
    y = F.dropout2d(ember.ones(8, 64, 3, 3), 0.5).numpy()
    per_channel = y.reshape(8, 64, 9)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))  # each plane all kept or all dropped
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7


# --- embedding and one_hot ----------------------------------------------------------------------


def test_embedding_matches_torch_with_padding_idx():
    idx = np.array([[1, 2, 0], [2, 4, 2]])
    check_op(lambda lib, w: nnf(lib).embedding(const(lib, idx), w), [(5, 3)])
    check_op(lambda lib, w: nnf(lib).embedding(const(lib, idx), w, padding_idx=2), [(5, 3)])


def test_embedding_max_norm_renormalises_rows_like_torch():
    w = rand(5, 3, seed=1) * 3
    ew, tw = ember.tensor(w), torch.tensor(w)
    idx = np.array([0, 3, 3])
    e = F.embedding(const(ember, idx), ew, max_norm=1.0)
    t = TF.embedding(const(torch, idx), tw, max_norm=1.0)
    np.testing.assert_allclose(to_numpy(e), t.numpy(), atol=1e-6)
    np.testing.assert_allclose(to_numpy(ew), tw.numpy(), atol=1e-6)


def test_one_hot_matches_torch():
    idx = np.array([[0, 3], [2, 1]])
    assert F.one_hot(const(ember, idx)).tolist() == TF.one_hot(const(torch, idx)).tolist()
    assert F.one_hot(const(ember, idx), 6).tolist() == TF.one_hot(const(torch, idx), 6).tolist()
    assert F.one_hot(const(ember, idx)).dtype is ember.int64


# --- losses ---------------------------------------------------------------------------------------


TARGET = np.array([1, 0, 4, -100, 2, 3])
CLASS_W = np.array([0.5, 1.0, 2.0, 0.7, 1.3], dtype=np.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices_match_torch(reduction, smoothing, weighted):
    def fn(lib, x):
        w = const(lib, CLASS_W) if weighted else None
        return nnf(lib).cross_entropy(x, const(lib, TARGET), w, reduction=reduction,
                                      label_smoothing=smoothing)
    check_op(fn, [(6, 5)])


def test_cross_entropy_custom_ignore_index_and_spatial_inputs_match_torch():
    t = np.array([[1, 3], [0, 1], [3, 3]])
    check_op(lambda lib, x: nnf(lib).cross_entropy(x, const(lib, t), ignore_index=3), [(3, 4, 2)])
    t4 = np.random.default_rng(0).integers(0, 4, (2, 3, 5))
    check_op(lambda lib, x: nnf(lib).cross_entropy(x, const(lib, t4), label_smoothing=0.1,
                                                   weight=const(lib, CLASS_W[:4])), [(2, 4, 3, 5)])
    check_op(lambda lib, x: nnf(lib).cross_entropy(x, const(lib, np.array(2))), [(4,)])  # unbatched


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_class_probabilities_match_torch(reduction):
    probs = np.random.default_rng(1).dirichlet(np.ones(5), size=6).astype(np.float32)
    check_op(lambda lib, x: nnf(lib).cross_entropy(x, const(lib, probs), reduction=reduction,
                                                   label_smoothing=0.1), [(6, 5)])
    check_op(lambda lib, x: nnf(lib).cross_entropy(x, const(lib, probs), const(lib, CLASS_W),
                                                   reduction=reduction), [(6, 5)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_torch(reduction):
    check_op(lambda lib, x: nnf(lib).nll_loss(nnf(lib).log_softmax(x, 1), const(lib, TARGET),
                                              const(lib, CLASS_W), reduction=reduction), [(6, 5)])


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_match_torch(name, reduction):
    check_op(lambda lib, x, y: getattr(nnf(lib), name)(x, y, reduction=reduction), [(4, 5), (4, 5)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_losses_match_torch(reduction):
    rng = np.random.default_rng(2)
    p, t = rng.uniform(0.02, 0.98, (4, 3)), rng.uniform(0, 1, (4, 3)).astype(np.float32)
    w, pw = rng.uniform(0.5, 2, (4, 3)).astype(np.float32), rng.uniform(0.5, 3, (3,)).astype(np.float32)
    bce, bce_logits = "binary_cross_entropy", "binary_cross_entropy_with_logits"
    check_op(lambda lib, x: getattr(nnf(lib), bce)(x, const(lib, t), const(lib, w), reduction=reduction),
             None, inputs=[p])
    check_op(lambda lib, x: getattr(nnf(lib), bce_logits)(x * 10, const(lib, t), reduction=reduction,
                                                          pos_weight=const(lib, pw)), [(4, 3)])
    check_op(lambda lib, x: getattr(nnf(lib), bce_logits)(x * 50, const(lib, t), const(lib, w),
                                                          reduction=reduction), [(4, 3)])


def test_loss_gradchecks_float64():
    x = rand(6, 5) * 2
    w64 = ember.tensor(CLASS_W, dtype=ember.float64)
    gradcheck(lambda x: F.cross_entropy(x, const(ember, TARGET), w64, label_smoothing=0.3), [x])
    probs = np.random.default_rng(1).dirichlet(np.ones(5), size=6)
    gradcheck(lambda x, p: F.cross_entropy(x, p, label_smoothing=0.1), [x, probs])
    gradcheck(lambda x: F.nll_loss(x, const(ember, TARGET), reduction="sum"), [x])
    gradcheck(lambda x, y: F.mse_loss(x, y) + F.l1_loss(x, y) + F.smooth_l1_loss(x, y),
              [x, rand(6, 5, seed=1)])
    probs01 = rand(3, 4, low=0, high=1)
    gradcheck(lambda x, t: F.binary_cross_entropy(x, t), [rand(3, 4, low=0.1, high=0.9), probs01])
    pos_weight = ember.tensor([2.0, 0.5, 1.0, 3.0], dtype=ember.float64)
    gradcheck(lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=pos_weight),
              [rand(3, 4) * 3, probs01])


@pytest.mark.filterwarnings("ignore:invalid value")
def test_cross_entropy_with_every_target_ignored_is_nan_like_torch():
    out = F.cross_entropy(ember.randn(2, 3), const(ember, np.array([-100, -100])))
    assert np.isnan(out.item())


# --- attention -------------------------------------------------------------------------------------


SDPA_SHAPES = [[(2, 3, 5, 4), (2, 3, 6, 4), (2, 3, 6, 7)], [(4, 4), (4, 4), (4, 3)]]


@pytest.mark.parametrize("shapes", SDPA_SHAPES)
@pytest.mark.parametrize("kw", [dict(), dict(is_causal=True), dict(scale=0.3)])
def test_sdpa_matches_torch(shapes, kw):
    check_op(lambda lib, q, k, v: nnf(lib).scaled_dot_product_attention(q, k, v, **kw), shapes)


def test_sdpa_masks_match_torch():
    rng = np.random.default_rng(3)
    bool_mask = rng.uniform(size=(5, 6)) > 0.4
    bool_mask[:, 0] = True
    float_mask = rng.normal(size=(3, 1, 5, 6)).astype(np.float32)
    shapes = [(3, 2, 5, 4), (3, 2, 6, 4), (3, 2, 6, 4)]
    for mask in (bool_mask, float_mask):
        check_op(lambda lib, q, k, v, m=mask: nnf(lib).scaled_dot_product_attention(q, k, v, const(lib, m)),
                 shapes)


def test_sdpa_grouped_query_attention_matches_torch():
    check_op(lambda lib, q, k, v: nnf(lib).scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                        enable_gqa=True),
             [(2, 4, 5, 3), (2, 2, 5, 3), (2, 2, 5, 3)])


def test_sdpa_first_and_second_derivatives_float64():
    q, k, v = rand(1, 3, 2), rand(1, 4, 2, seed=1), rand(1, 4, 3, seed=2)
    mask = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [1, 1, 1, 0]], dtype=bool)
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, const(ember, mask)), [q, k, v])
    gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [q, k, v],
                  atol=1e-5, rtol=1e-4)


def test_sdpa_dropout_only_changes_training_output():
    q = ember.randn(2, 4, 3)
    base = F.scaled_dot_product_attention(q, q, q)
    dropped = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    assert dropped.shape == base.shape and not np.allclose(dropped.numpy(), base.numpy())


# --- errors ---------------------------------------------------------------------------------------


def test_conv2d_rejects_a_3d_input_with_a_hint():
    with pytest.raises(ShapeError, match=r"conv2d: input \(8, 3, 32\) has 3 dims, expected 4 "
                                         r"\(N, C, H, W\)\. Did you forget the batch dimension\?"):
        F.conv2d(ember.randn(8, 3, 32), ember.randn(4, 3, 3, 3))


@pytest.mark.parametrize("call,err,pattern", [
    (lambda: F.conv2d(ember.randn(1, 4, 8, 8), ember.randn(2, 3, 3, 3)), ShapeError,
     r"conv2d: input \(1, 4, 8, 8\) has 4 channels, but weight \(2, 3, 3, 3\) with groups=1 expects 3"),
    (lambda: F.conv2d(ember.randn(1, 3, 2, 2), ember.randn(2, 3, 3, 3)), ShapeError,
     r"conv2d: the padded input size \(2, 2\) is smaller than the \(dilated\) kernel size \(3, 3\)"),
    (lambda: F.conv2d(ember.randn(1, 3, 8, 8), ember.randn(2, 3, 3, 3), stride=2, padding="same"), ValueError,
     r"padding='same' is not supported for strided convolutions"),
    (lambda: F.conv1d(ember.randn(3, 10), ember.randn(2, 3, 3)), ShapeError,
     r"conv1d: input \(3, 10\) has 2 dims, expected 3 \(N, C, L\)"),
    (lambda: F.linear(ember.randn(4, 5), ember.randn(3, 6)), ShapeError,
     r"linear: input \(4, 5\) has 5 features .* expects 6"),
    (lambda: F.max_pool2d(ember.randn(2, 8), 2), ShapeError, r"max_pool2d: input \(2, 8\) has 2 dims"),
    (lambda: F.max_pool2d(ember.randn(1, 1, 4, 4), 2, padding=2), ValueError, r"at most half of the kernel"),
    (lambda: F.cross_entropy(ember.randn(4, 3), ember.tensor([0, 1, 2, 3])), IndexingError,
     r"cross_entropy: target contains class index 3 .* out of range for 3 classes"),
    (lambda: F.cross_entropy(ember.randn(4, 3), ember.randn(4, 3).softmax(-1)[:, :2]), ShapeError,
     r"cross_entropy: class-probability target \(4, 2\) must have the input's shape \(4, 3\)"),
    (lambda: F.cross_entropy(ember.randn(4, 3), ember.tensor([[0, 1, 2]])), ShapeError,
     r"cross_entropy: target \(1, 3\) does not match input \(4, 3\)"),
    (lambda: F.layer_norm(ember.randn(2, 5), (4,)), ShapeError,
     r"layer_norm: normalized_shape \(4,\) does not match the last dims of the input \(2, 5\)"),
    (lambda: F.group_norm(ember.randn(2, 5, 3), 2), ShapeError, r"group_norm: 5 channels are not divisible"),
    (lambda: F.batch_norm(ember.randn(1, 3), None, None, training=True), ValueError,
     r"expected more than 1 value per channel"),
    (lambda: F.dropout(ember.randn(3), 1.5), ValueError, r"dropout probability has to be between 0 and 1"),
    (lambda: F.embedding(ember.tensor([0, 7]), ember.randn(5, 2)), IndexingError,
     r"embedding: index out of range for a table of 5 rows"),
    (lambda: F.embedding(ember.randn(2), ember.randn(5, 2)), DTypeError,
     r"embedding: input must hold integer"),
    (lambda: F.scaled_dot_product_attention(ember.randn(2, 3, 4), ember.randn(2, 3, 5), ember.randn(2, 3, 5)),
     ShapeError, r"same embedding size"),
    (lambda: F.binary_cross_entropy(ember.tensor([0.5, 1.5]), ember.tensor([0.0, 1.0])), ValueError,
     r"probabilities in \[0, 1\]"),
    (lambda: F.mse_loss(ember.randn(2, 3), ember.randn(2, 3), reduction="avg"), ValueError,
     r"reduction must be 'none', 'mean' or 'sum'"),
])
def test_errors_name_the_function_and_what_was_expected(call, err, pattern):
    with pytest.raises(err, match=pattern):
        call()
