"""Module API: registration and traversal, state_dict keys against torch's, load_state_dict errors,
hooks, train/eval, dtype moves, zero_grad, apply, repr and Parameter itself."""

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
from ember.errors import CheckpointError

from .parity import check_module, copy_weights, rand


def _conv_net(lib):
    return lib.Sequential(
        lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
        lib.Flatten(), lib.Linear(4 * 4 * 4, 10), lib.Dropout(0.1), lib.LayerNorm(10))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.rnn = nn.LSTM(4, 6, 2)
        self.attn = nn.MultiheadAttention(6, 2)
        self.blocks = nn.ModuleList([nn.Linear(6, 6), nn.GroupNorm(2, 6)])
        self.heads = nn.ModuleDict({"a": nn.Linear(6, 2), "b": nn.RMSNorm(6)})


class _TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.rnn = torch.nn.LSTM(4, 6, 2)
        self.attn = torch.nn.MultiheadAttention(6, 2)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(6, 6), torch.nn.GroupNorm(2, 6)])
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(6, 2), "b": torch.nn.RMSNorm(6)})


def test_state_dict_keys_and_shapes_equal_torch():
    for em, tm in [(_conv_net(nn), _conv_net(torch.nn)), (_Net(), _TorchNet())]:
        es, ts = em.state_dict(), tm.state_dict()
        assert list(es) == list(ts)
        assert [tuple(v.shape) for v in es.values()] == [tuple(v.shape) for v in ts.values()]
        assert [n for n, _ in em.named_parameters()] == [n for n, _ in tm.named_parameters()]
        assert [n for n, _ in em.named_buffers()] == [n for n, _ in tm.named_buffers()]
        assert [n for n, _ in em.named_modules()] == [n for n, _ in tm.named_modules()]
        assert [n for n, _ in em.named_children()] == [n for n, _ in tm.named_children()]
        assert em.num_parameters() == sum(p.numel() for p in tm.parameters())


def test_conv_net_forward_backward_matches_torch_after_loading_its_state_dict():
    check_module(_conv_net(nn), _conv_net(torch.nn), [rand(2, 3, 8, 8)], train=False)


def test_repr_matches_torch():
    em, tm = _conv_net(nn), _conv_net(torch.nn)
    assert repr(em) == repr(tm)
    assert repr(nn.LSTM(3, 4, 2, batch_first=True)) == repr(torch.nn.LSTM(3, 4, 2, batch_first=True))
    assert repr(nn.Embedding(10, 4, padding_idx=0)) == repr(torch.nn.Embedding(10, 4, padding_idx=0))
    assert repr(nn.GELU("tanh")) == repr(torch.nn.GELU("tanh"))
    for name, args, kw in [("GroupNorm", (2, 4), dict(bias=False)), ("RMSNorm", (4,), {}),
                           ("BatchNorm1d", (3,), dict(bias=False)), ("LayerNorm", (4,), dict(bias=False)),
                           ("Conv1d", (2, 4, 3), dict(padding="same", padding_mode="reflect", groups=2)),
                           ("ConvTranspose2d", (2, 4, 3), dict(stride=2, output_padding=1, bias=False)),
                           ("AvgPool2d", (3,), {}), ("AdaptiveAvgPool2d", ((2, 3),), {}),
                           ("Softmax", (1,), {}), ("LeakyReLU", (0.2,), {}), ("CrossEntropyLoss", (), {}),
                           ("GRU", (3, 4), dict(num_layers=2, dropout=0.5))]:
        assert repr(getattr(nn, name)(*args, **kw)) == repr(getattr(torch.nn, name)(*args, **kw)), name


def test_shared_parameters_are_listed_once_and_get_summed_grads():
    emb = nn.Embedding(5, 3)
    head = nn.Linear(3, 5, bias=False)
    head.weight = emb.weight  # weight tying
    model = nn.Sequential(emb, head)
    assert len(list(model.parameters())) == 1
    assert list(model.state_dict()) == ["0.weight", "1.weight"]  # state_dict keeps both names, like torch
    assert len(list(model.named_parameters(remove_duplicate=False))) == 2
    model(ember.tensor([1, 2])).sum().backward()
    assert emb.weight.grad is head.weight.grad


def test_setattr_registers_and_rejects_wrong_types():
    m = nn.Module()
    m.w = nn.Parameter(ember.zeros(2))
    m.child = nn.Linear(2, 2)
    m.register_buffer("stat", ember.ones(2))
    m.register_buffer("scratch", ember.zeros(2), persistent=False)
    m.plain = ember.zeros(3)  # a plain tensor attribute is not registered
    assert list(m._parameters) == ["w"] and list(m._modules) == ["child"]
    assert list(m.state_dict()) == ["w", "stat", "child.weight", "child.bias"]
    assert [n for n, _ in m.named_buffers()] == ["stat", "scratch"]
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = ember.zeros(2)
    with pytest.raises(TypeError, match="child module"):
        m.child = 3
    m.w = None
    assert m.w is None and "w" not in m.state_dict()
    m.stat = ember.full((2,), 5.0)  # a buffer may be replaced by another tensor
    np.testing.assert_array_equal(m.state_dict()["stat"].numpy(), [5.0, 5.0])
    del m.child
    assert not hasattr(m, "child")
    with pytest.raises(AttributeError, match="nope"):
        _ = m.nope
    m.b = nn.Buffer(ember.ones(1), persistent=False)
    assert "b" in dict(m.named_buffers()) and "b" not in m.state_dict()
    with pytest.raises(KeyError, match="contain"):
        m.register_parameter("a.b", None)
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", ember.zeros(1))


def test_load_state_dict_copies_in_place_and_returns_key_lists():
    em, tm = _conv_net(nn), _conv_net(torch.nn)
    w = em[0].weight
    copy_weights(em, tm)
    assert em[0].weight is w  # same Parameter object, new values
    np.testing.assert_array_equal(w.detach().numpy(), tm[0].weight.detach().numpy())
    sd = {k: ember.tensor(v.numpy()) for k, v in tm.state_dict().items()}
    sd.pop("5.bias")
    sd["extra.weight"] = ember.zeros(1)
    missing, unexpected = em.load_state_dict(sd, strict=False)
    assert missing == ["5.bias"] and unexpected == ["extra.weight"]
    # NumPy arrays load too
    em.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})


def test_load_state_dict_errors_name_missing_unexpected_and_misshaped_keys():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    sd = m.state_dict()
    bad = OrderedDict((k, v) for k, v in sd.items() if k != "1.running_var")
    bad["0.weight"] = ember.zeros(4, 5)
    bad["2.weight"] = ember.zeros(1)
    with pytest.raises(CheckpointError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    assert "Sequential" in msg
    assert 'Missing key(s) in state_dict: "1.running_var"' in msg
    assert 'Unexpected key(s) in state_dict: "2.weight"' in msg
    assert "size mismatch for 0.weight" in msg and "(4, 5)" in msg and "(4, 3)" in msg
    # strict=False still refuses a mis-shaped tensor, but tolerates the rest
    with pytest.raises(CheckpointError, match="size mismatch"):
        m.load_state_dict(bad, strict=False)


def test_load_state_dict_casts_dtype_and_keeps_int_buffers():
    m = nn.BatchNorm1d(3)
    sd = {k: v.to(ember.float64) if v.dtype.is_floating_point else v + 7 for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    assert m.weight.dtype is ember.float32 and m.num_batches_tracked.dtype is ember.int64
    assert int(m.num_batches_tracked) == 7


def test_forward_hooks_and_pre_hooks_with_handles():
    lin = nn.Linear(2, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda mod, args: (args[0] * 0,))
    h2 = lin.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out + 1)
    x = ember.randn(3, 2)
    y = lin(x)
    expected = (lin.bias.detach().numpy() + 1)[None].repeat(3, 0)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-6)
    assert calls == [(3, 2)]
    h1.remove()
    h2.remove()
    np.testing.assert_allclose(lin(x).detach().numpy(), (x.numpy() @ lin.weight.detach().numpy().T
                                                         + lin.bias.detach().numpy()), rtol=1e-5)
    assert calls == [(3, 2)]
    order = []
    with lin.register_forward_hook(lambda *a: order.append("late")):
        lin.register_forward_hook(lambda *a: order.append("early"), prepend=True).remove()
        h = lin.register_forward_hook(lambda *a: order.append("first"), prepend=True)
        lin(x)
        h.remove()
    lin(x)
    assert order == ["first", "late"]
    seen = {}
    lin.register_forward_pre_hook(lambda m, a, k: seen.update(k), with_kwargs=True)
    lin(input=x)
    assert "input" in seen


def test_train_eval_propagate_and_change_behaviour():
    m = _conv_net(nn)
    assert all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    x = ember.randn(2, 3, 8, 8)
    np.testing.assert_array_equal(m(x).detach().numpy(), m(x).detach().numpy())
    assert int(m[1].num_batches_tracked) == 0  # eval does not update running statistics
    m.train()
    m(x)
    assert int(m[1].num_batches_tracked) == 1
    with pytest.raises(ValueError):
        m.train("yes")


def test_to_float64_keeps_parameter_identity_and_casts_float_buffers():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    params = list(m.parameters())
    m[0].weight.grad = ember.ones(4, 3)
    assert m.to(ember.float64) is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.dtype is ember.float64 and isinstance(p, nn.Parameter) and p.requires_grad for p in params)
    assert m[0].weight.grad.dtype is ember.float64
    assert m[1].running_mean.dtype is ember.float64 and m[1].num_batches_tracked.dtype is ember.int64
    y = m(ember.randn(5, 3, dtype=ember.float64))
    assert y.dtype is ember.float64
    y.sum().backward()
    assert m[0].bias.grad.dtype is ember.float64
    m.float()
    assert m[0].weight.dtype is ember.float32
    with pytest.raises(TypeError, match="floating"):
        m.to(ember.int32)


def test_float64_module_passes_finite_difference_check():
    from helpers import gradcheck
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.LayerNorm(4), nn.Linear(4, 2)).double()
    gradcheck(lambda x: m(x), [np.random.default_rng(0).normal(size=(2, 3))])


def test_zero_grad_requires_grad_and_apply():
    m = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    m(ember.randn(4, 2)).sum().backward()
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not np.any(p.grad.numpy()) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    visited = []
    m.apply(lambda mod: visited.append(type(mod).__name__))
    assert visited == ["Linear", "Linear", "Sequential"]

    def init_fn(mod):
        if isinstance(mod, nn.Linear):
            nn.init.constant_(mod.weight, 0.5)
    m.apply(init_fn)
    assert np.all(m[1].weight.detach().numpy() == 0.5)


def test_containers_index_slice_and_mutate():
    s = nn.Sequential(OrderedDict(a=nn.Linear(2, 3), b=nn.ReLU()))
    assert isinstance(s[-1], nn.ReLU) and isinstance(s[:1], nn.Sequential) and len(s[:1]) == 1
    s.append(nn.Linear(3, 1))
    assert list(s.state_dict()) == ["a.weight", "a.bias", "2.weight", "2.bias"]
    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml += [nn.Linear(1, 2)]
    ml.insert(0, nn.Identity())
    assert [type(x).__name__ for x in ml] == ["Identity", "Linear", "Linear"]
    assert list(ml.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]
    del ml[0]
    assert list(ml.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    md = nn.ModuleDict({"x": nn.Linear(1, 1)})
    md["y"] = nn.Tanh()
    assert list(md.keys()) == ["x", "y"] and "y" in md and len(md) == 2
    pl = nn.ParameterList([nn.Parameter(ember.zeros(2)), nn.Parameter(ember.ones(3))])
    assert list(pl.state_dict()) == ["0", "1"] and len(list(pl.parameters())) == 2
    x = ember.randn(2, 2)
    assert nn.Identity(5, foo=1)(x) is x
    with pytest.raises(IndexError):
        s[7]
    assert s.get_submodule("a") is s[0]
    assert nn.Sequential(nn.Sequential(s)).get_parameter("0.0.a.weight") is s[0].weight


def test_deepcopy_gives_independent_equal_module():
    m = _conv_net(nn)
    c = copy.deepcopy(m)
    for p, q in zip(m.parameters(), c.parameters()):
        assert p is not q and isinstance(q, nn.Parameter) and q.requires_grad
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    with ember.no_grad():
        c[0].weight.add_(1.0)
    assert not np.allclose(c[0].weight.detach().numpy(), m[0].weight.detach().numpy())


def test_parameter_is_a_leaf_tensor_sharing_storage():
    t = ember.zeros(3)
    p = nn.Parameter(t)
    assert isinstance(p, nn.Parameter) and isinstance(p, ember.Tensor)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    with ember.no_grad():
        p.add_(1.0)
    np.testing.assert_array_equal(t.numpy(), [1.0, 1.0, 1.0])  # same storage
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")
    y = p * 2
    assert type(y) is ember.Tensor and y.requires_grad
    with pytest.raises(TypeError, match="ember Tensor"):
        nn.Parameter(np.zeros(3))


def test_forward_not_implemented_names_the_class():
    class Empty(nn.Module):
        pass
    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()(1)


def test_parameters_to_vector_round_trip():
    from ember.nn.utils import parameters_to_vector, vector_to_parameters
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    vec = parameters_to_vector(m.parameters())
    expected = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    np.testing.assert_array_equal(vec.detach().numpy(), expected)
    vector_to_parameters(vec * 2, m.parameters())
    np.testing.assert_allclose(parameters_to_vector(m.parameters()).detach().numpy(), 2 * expected)
    with pytest.raises(ember.ShapeError, match="26 elements"):
        vector_to_parameters(ember.zeros(5), m.parameters())
