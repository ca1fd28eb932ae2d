"""Every layer against its PyTorch twin: weights copied through the state dict, then forward outputs,
input gradients and parameter gradients compared in float32."""

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn

from .parity import check_module, copy_weights, rand


def twins(name, *args, **kwargs):
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(bias):
    check_module(*twins("Linear", 5, 3, bias=bias), [rand(2, 4, 5)])


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1, dilation=2, groups=2),
    dict(kernel_size=3, padding="same", bias=False),
    dict(kernel_size=3, padding=2, padding_mode="reflect"),
])
def test_conv1d_matches_torch(kw):
    check_module(*twins("Conv1d", 4, 6, **kw), [rand(2, 4, 11)])


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
    dict(kernel_size=3, padding="same", bias=False),
    dict(kernel_size=3, padding=1, padding_mode="replicate"),
    dict(kernel_size=3, padding=1, padding_mode="circular"),
])
def test_conv2d_matches_torch(kw):
    check_module(*twins("Conv2d", 4, 6, **kw), [rand(2, 4, 7, 8)])


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), groups=2, bias=False, dilation=(1, 2)),
])
def test_conv_transpose2d_matches_torch(kw):
    check_module(*twins("ConvTranspose2d", 4, 6, **kw), [rand(2, 4, 5, 6)])


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3), dict(kernel_size=4, stride=3, padding=1, output_padding=2, groups=2, dilation=2)])
def test_conv_transpose1d_matches_torch(kw):
    check_module(*twins("ConvTranspose1d", 4, 6, **kw), [rand(2, 4, 7)])
    em, tm = twins("ConvTranspose1d", 4, 6, 3, stride=2)
    check_module(em, tm, [rand(2, 4, 5)], kwargs=dict(output_size=(12,)))


def test_conv_transpose2d_output_size_picks_output_padding():
    em, tm = twins("ConvTranspose2d", 3, 2, 3, stride=2, padding=1)
    check_module(em, tm, [rand(1, 3, 4, 4)], kwargs=dict(output_size=(8, 8)))
    with pytest.raises(ValueError, match="not reachable"):
        em(ember.randn(1, 3, 4, 4), output_size=(12, 12))


@pytest.mark.parametrize("layer,args", [
    ("MaxPool2d", (2,)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("AvgPool2d", (2,)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AdaptiveAvgPool2d", ((3, 2),)),
    ("AdaptiveAvgPool2d", (1,)),
])
def test_pooling_matches_torch(layer, args):
    a, k = (args, {}) if isinstance(args, tuple) else ((), args)
    check_module(*twins(layer, *a, **k), [rand(2, 3, 7, 6)])


@pytest.mark.parametrize("layer,args", [
    ("MaxPool1d", (2,)), ("MaxPool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("AvgPool1d", (3,)), ("AvgPool1d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AdaptiveAvgPool1d", (4,)),
])
def test_pooling_1d_matches_torch(layer, args):
    a, k = (args, {}) if isinstance(args, tuple) else ((), args)
    check_module(*twins(layer, *a, **k), [rand(2, 3, 9)])


def test_maxpool_return_indices_match_torch():
    eo, to = check_module(*twins("MaxPool2d", 2, return_indices=True), [rand(2, 3, 6, 6)])
    np.testing.assert_array_equal(eo[1].numpy(), to[1].numpy())


@pytest.mark.parametrize("name,shape", [("BatchNorm1d", (6, 4)), ("BatchNorm1d", (6, 4, 5)),
                                        ("BatchNorm2d", (3, 4, 5, 5))])
def test_batchnorm_train_then_eval_matches_torch(name, shape):
    em, tm = twins(name, 4, momentum=0.3)
    with torch.no_grad():
        tm.weight.uniform_(0.5, 1.5)
        tm.bias.uniform_(-0.5, 0.5)
    check_module(em, tm, [rand(*shape, seed=1)], train=True)
    # a second training step moves the running statistics again; both stay in step with torch
    check_module(em, tm, [rand(*shape, seed=2)], train=True)
    es, ts = em.state_dict(), tm.state_dict()
    assert list(es) == list(ts)
    for k in ts:
        np.testing.assert_allclose(es[k].numpy().astype(np.float64), ts[k].double().numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=k)
    assert int(em.num_batches_tracked) == 2
    # eval: normalises with the running statistics
    check_module(em, tm, [rand(*shape, seed=3)], train=False)


def test_batchnorm_cumulative_average_no_running_stats_and_no_bias():
    em, tm = twins("BatchNorm1d", 3, momentum=None)
    for s in range(3):
        check_module(em, tm, [rand(5, 3, seed=s)], train=True)
    np.testing.assert_allclose(em.running_var.numpy(), tm.running_var.numpy(), rtol=1e-5)
    em, tm = twins("BatchNorm2d", 3, track_running_stats=False, affine=False)
    assert list(em.state_dict()) == list(tm.state_dict()) == []
    check_module(em, tm, [rand(2, 3, 4, 4)], train=False)  # no running stats: batch statistics in eval
    em, tm = twins("BatchNorm2d", 3, bias=False)
    assert list(em.state_dict()) == list(tm.state_dict())
    check_module(em, tm, [rand(2, 3, 4, 4)], train=True)


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(ember.ShapeError, match="BatchNorm2d"):
        nn.BatchNorm2d(3)(ember.randn(2, 3))


@pytest.mark.parametrize("args,kw", [((5,), {}), (((3, 5),), dict(eps=1e-3)), ((5,), dict(bias=False)),
                                     ((5,), dict(elementwise_affine=False))])
def test_layernorm_matches_torch(args, kw):
    em, tm = twins("LayerNorm", *args, **kw)
    if tm.weight is not None:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
    check_module(em, tm, [rand(2, 3, 5)])


@pytest.mark.parametrize("kw", [{}, dict(eps=1e-4), dict(elementwise_affine=False)])
def test_rmsnorm_matches_torch(kw):
    em, tm = twins("RMSNorm", (3, 5), **kw)
    if tm.weight is not None:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
    check_module(em, tm, [rand(2, 3, 5)])


@pytest.mark.parametrize("kw", [{}, dict(affine=False), dict(bias=False)])
def test_groupnorm_matches_torch(kw):
    em, tm = twins("GroupNorm", 2, 6, **kw)
    with torch.no_grad():
        if tm.weight is not None:
            tm.weight.uniform_(0.5, 1.5)
        if tm.bias is not None:
            tm.bias.uniform_(-0.5, 0.5)
    check_module(em, tm, [rand(3, 6, 4, 2)])


def test_dropout_identity_in_eval_and_scaled_mask_in_train():
    d = nn.Dropout(0.25)
    x = ember.ones(200, 100)
    assert d.eval()(x) is x or np.array_equal(d(x).numpy(), x.numpy())
    y = d.train()(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_dropout2d_zeroes_whole_channels():
    d = nn.Dropout2d(0.5)
    y = d(ember.ones(8, 64, 3, 3)).numpy()
    per_channel = y.reshape(8, 64, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0.35 < (per_channel[..., 0] == 0).mean() < 0.65
    assert np.array_equal(d.eval()(ember.ones(2, 3, 1, 1)).numpy(), np.ones((2, 3, 1, 1)))


@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_embedding_matches_torch_and_padding_row_gets_no_grad(padding_idx):
    em, tm = twins("Embedding", 7, 4, padding_idx=padding_idx)
    ids = np.array([[0, 3, 6, 3], [1, 0, 2, 6]])
    check_module(em, tm, [ids])
    if padding_idx is not None:
        row = padding_idx % 7
        assert not np.any(em.weight.grad.numpy()[row])
        fresh = nn.Embedding(7, 4, padding_idx=padding_idx)
        assert not np.any(fresh.weight.detach().numpy()[row])


def test_embedding_max_norm_renormalises_rows_like_torch():
    em, tm = twins("Embedding", 7, 4, max_norm=1.0)
    check_module(em, tm, [np.array([[0, 3, 6, 3]])])
    np.testing.assert_allclose(em.weight.detach().numpy(), tm.weight.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_embedding_from_pretrained_is_frozen_copy():
    w = ember.randn(5, 3)
    e = nn.Embedding.from_pretrained(w)
    assert not e.weight.requires_grad
    np.testing.assert_array_equal(e(ember.tensor([4, 0])).numpy(), w.numpy()[[4, 0]])


def test_flatten_unflatten_match_torch():
    check_module(nn.Flatten(), torch.nn.Flatten(), [rand(2, 3, 4, 5)])
    check_module(nn.Flatten(0, 2), torch.nn.Flatten(0, 2), [rand(2, 3, 4, 5)])
    check_module(nn.Unflatten(1, (3, 4)), torch.nn.Unflatten(1, (3, 4)), [rand(2, 12)])


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
@pytest.mark.parametrize("name,args", [
    ("ReLU", ()), ("GELU", ()), ("GELU", ("tanh",)), ("SiLU", ()), ("Tanh", ()), ("Sigmoid", ()),
    ("LeakyReLU", (0.2,)), ("ELU", (0.7,)), ("Softplus", (2.0, 1.0)), ("Softmax", (1,)),
    ("LogSoftmax", (-1,)), ("Softmax", ()),
])
def test_activation_modules_match_torch(name, args):
    check_module(*twins(name, *args), [rand(3, 4, 5, low=-3, high=3)])


def _loss_inputs(name):
    rng = np.random.default_rng(0)
    if name in ("CrossEntropyLoss", "NLLLoss"):
        x = rng.normal(size=(6, 5))
        if name == "NLLLoss":
            x = x - np.log(np.exp(x).sum(1, keepdims=True))
        return [x, np.array([0, 4, 2, 2, 1, 3])]
    if name == "BCELoss":
        return [rng.uniform(0.05, 0.95, size=(4, 3)), rng.integers(0, 2, size=(4, 3)).astype(np.float32)]
    return [rng.normal(size=(4, 3)), rng.normal(size=(4, 3))]


@pytest.mark.parametrize("name,kw", [
    ("CrossEntropyLoss", {}), ("CrossEntropyLoss", dict(label_smoothing=0.1, reduction="sum")),
    ("CrossEntropyLoss", dict(ignore_index=2)), ("NLLLoss", dict(reduction="none")),
    ("MSELoss", {}), ("L1Loss", dict(reduction="sum")), ("BCELoss", {}), ("BCEWithLogitsLoss", {}),
])
def test_loss_modules_match_torch(name, kw):
    x, t = _loss_inputs(name)
    em, tm = twins(name, **kw)
    ex = ember.tensor(x.astype(np.float32), requires_grad=True)
    tx = torch.tensor(x.astype(np.float32), requires_grad=True)
    et, tt = (ember.tensor(t), torch.tensor(t)) if t.dtype.kind == "i" else \
        (ember.tensor(t.astype(np.float32)), torch.tensor(t.astype(np.float32)))
    el, tl = em(ex, et), tm(tx, tt)
    np.testing.assert_allclose(el.detach().numpy(), tl.detach().numpy(), rtol=1e-5, atol=1e-6)
    el.sum().backward()
    tl.sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_weighted_losses_keep_weight_as_buffer_like_torch():
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0], dtype=np.float32)
    em, tm = nn.CrossEntropyLoss(weight=ember.tensor(w)), torch.nn.CrossEntropyLoss(weight=torch.tensor(w))
    assert list(em.state_dict()) == list(tm.state_dict()) == ["weight"]
    x, t = _loss_inputs("CrossEntropyLoss")
    e = em(ember.tensor(x.astype(np.float32)), ember.tensor(t))
    t_loss = tm(torch.tensor(x.astype(np.float32)), torch.tensor(t))
    np.testing.assert_allclose(e.item(), t_loss.item(), rtol=1e-5)
    pw = np.array([0.5, 2.0, 1.0], dtype=np.float32)
    em = nn.BCEWithLogitsLoss(pos_weight=ember.tensor(pw))
    tm = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))
    x, t = _loss_inputs("BCELoss")
    np.testing.assert_allclose(em(ember.tensor(x.astype(np.float32)), ember.tensor(t)).item(),
                               tm(torch.tensor(x.astype(np.float32)), torch.tensor(t)).item(), rtol=1e-5)


# --- attention and transformer ------------------------------------------------------------------------


def _mha_inputs(batch_first, L=4, S=5, N=2, E=8, self_attn=False):
    shape_q = (N, L, 8) if batch_first else (L, N, E)
    shape_k = (N, S, E) if batch_first else (S, N, E)
    q = rand(*shape_q, seed=1)
    if self_attn:
        return [q, q, q]
    return [q, rand(*shape_k, seed=2), rand(*shape_k, seed=3)]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("average", [True, False])
def test_multihead_attention_matches_torch(batch_first, average):
    em, tm = twins("MultiheadAttention", 8, 2, batch_first=batch_first)
    check_module(em, tm, _mha_inputs(batch_first), kwargs=dict(average_attn_weights=average))


def test_multihead_attention_self_attention_fused_projection_and_no_bias():
    em, tm = twins("MultiheadAttention", 8, 4, bias=False, batch_first=True)
    copy_weights(em, tm)
    q = rand(2, 4, 8)
    x_e = ember.tensor(q.astype(np.float32), requires_grad=True)
    x_t = torch.tensor(q.astype(np.float32), requires_grad=True)
    eo, ew = em(x_e, x_e, x_e)
    to, tw = tm(x_t, x_t, x_t)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), atol=1e-6, rtol=1e-4)
    eo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(x_e.grad.numpy(), x_t.grad.numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(em.in_proj_weight.grad.numpy(), tm.in_proj_weight.grad.numpy(), atol=1e-5,
                               rtol=1e-4)


@pytest.mark.parametrize("mask_kind", ["bool", "float"])
@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_masks_match_torch(mask_kind, need_weights):
    L, S, N = 4, 5, 2
    rng = np.random.default_rng(0)
    attn = rng.uniform(size=(L, S)) < 0.3
    attn[:, 0] = False  # keep every row attending to something
    kpm = np.zeros((N, S), dtype=bool)
    kpm[1, 3:] = True
    if mask_kind == "float":
        attn = np.where(attn, -np.inf, 0.0).astype(np.float32)
        kpm = np.where(kpm, -np.inf, 0.0).astype(np.float32)
    em, tm = twins("MultiheadAttention", 8, 2)
    check_module(em, tm, _mha_inputs(False, L, S, N),
                 kwargs=dict(attn_mask=attn, key_padding_mask=kpm, need_weights=need_weights))


def test_multihead_attention_3d_mask_unbatched_and_need_weights_false():
    em, tm = twins("MultiheadAttention", 8, 2, batch_first=True)
    mask = np.random.default_rng(0).uniform(size=(2 * 2, 4, 5)).astype(np.float32)
    check_module(em, tm, _mha_inputs(True), kwargs=dict(attn_mask=mask))
    eo, _ = check_module(em, tm, [rand(4, 8, seed=1), rand(5, 8, seed=2), rand(5, 8, seed=3)],
                         kwargs=dict(need_weights=False))
    assert eo[1] is None


def test_multihead_attention_shared_key_value_matches_torch():
    em, tm = twins("MultiheadAttention", 8, 2, batch_first=True)
    copy_weights(em, tm)
    q, kv = rand(2, 4, 8, seed=1), rand(2, 6, 8, seed=2)
    eq, ekv = ember.tensor(q.astype(np.float32)), ember.tensor(kv.astype(np.float32), requires_grad=True)
    tq, tkv = torch.tensor(q.astype(np.float32)), torch.tensor(kv.astype(np.float32), requires_grad=True)
    eo, to = em(eq, ekv, ekv)[0], tm(tq, tkv, tkv)[0]
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), atol=1e-5, rtol=1e-4)
    eo.sum().backward()
    to.sum().backward()
    np.testing.assert_allclose(ekv.grad.numpy(), tkv.grad.numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(em.in_proj_bias.grad.numpy(), tm.in_proj_bias.grad.numpy(), atol=1e-5,
                               rtol=1e-4)


def test_multihead_attention_kdim_vdim_matches_torch():
    em, tm = twins("MultiheadAttention", 8, 2, kdim=3, vdim=5, batch_first=True)
    assert list(em.state_dict()) == list(tm.state_dict())
    check_module(em, tm, [rand(2, 4, 8, seed=1), rand(2, 6, 3, seed=2), rand(2, 6, 5, seed=3)])


def test_multihead_attention_causal_flag_masks_the_future():
    em = nn.MultiheadAttention(8, 2, batch_first=True)
    x = ember.randn(1, 5, 8)
    out, w = em(x, x, x, is_causal=True)
    assert not np.any(np.triu(w.detach().numpy()[0], 1))
    causal = ember.ones(5, 5, dtype=ember.bool).triu(1)
    np.testing.assert_allclose(out.detach().numpy(), em(x, x, x, attn_mask=causal)[0].detach().numpy())


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder_layer_matches_torch(norm_first, batch_first):
    kw = dict(dim_feedforward=16, dropout=0.0, batch_first=batch_first, norm_first=norm_first,
              activation="gelu")
    em, tm = twins("TransformerEncoderLayer", 8, 2, **kw)
    assert list(em.state_dict()) == list(tm.state_dict())
    x = rand(2, 5, 8) if batch_first else rand(5, 2, 8)
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    check_module(em, tm, [x], train=True, kwargs=dict(src_mask=causal))


def test_transformer_encoder_stack_and_block_match_torch():
    layer_e = nn.TransformerBlock(8, 2, dropout=0.0)
    layer_t = torch.nn.TransformerEncoderLayer(8, 2, 32, 0.0, "gelu", batch_first=True, norm_first=True)
    em = nn.TransformerEncoder(layer_e, 2, norm=nn.LayerNorm(8))
    tm = torch.nn.TransformerEncoder(layer_t, 2, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    assert list(em.state_dict()) == list(tm.state_dict())
    copy_weights(em, tm)
    check_module(em, tm, [rand(2, 5, 8)], train=True)


def test_layers_default_initialisation_matches_torch_statistics():
    torch.manual_seed(0)
    for name, args in [("Linear", (400, 300)), ("Conv2d", (16, 32, 3)), ("ConvTranspose2d", (16, 32, 3))]:
        em, tm = twins(name, *args)
        for p in ("weight", "bias"):
            e = getattr(em, p).detach().numpy()
            t = getattr(tm, p).detach().numpy()
            bound = np.abs(t).max()
            assert np.abs(e).max() <= bound * 1.01 + 1e-7, (name, p)
            assert np.abs(e).max() > bound * 0.9, (name, p)
            np.testing.assert_allclose(e.std(), t.std(), rtol=0.1, err_msg=f"{name}.{p}")
    em, tm = twins("MultiheadAttention", 64, 4)
    np.testing.assert_allclose(em.in_proj_weight.detach().numpy().std(),
                               tm.in_proj_weight.detach().numpy().std(), rtol=0.05)
    assert not np.any(em.in_proj_bias.detach().numpy()) and not np.any(em.out_proj.bias.detach().numpy())
    em = nn.Embedding(1000, 50)
    w = em.weight.detach().numpy()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
