"""LSTM, GRU and their cells against PyTorch with identical weights (loaded from torch's state dict):
outputs, final states, input/initial-state gradients and every weight's gradient."""

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn

from .parity import check_module, copy_weights, rand

T, B, I, H = 5, 3, 4, 6


def _inputs(batch_first, initial, layers, dirs, cell_state):
    x = rand(B, T, I, seed=1) if batch_first else rand(T, B, I, seed=1)
    if not initial:
        return [x]
    h0 = rand(layers * dirs, B, H, seed=2)
    return [x, (h0, rand(layers * dirs, B, H, seed=3))] if cell_state else [x, h0]


def _check(name, layers=1, batch_first=False, initial=False, bidirectional=False, bias=True):
    kw = dict(num_layers=layers, batch_first=batch_first, bidirectional=bidirectional, bias=bias)
    em, tm = getattr(nn, name)(I, H, **kw), getattr(torch.nn, name)(I, H, **kw)
    assert list(em.state_dict()) == list(tm.state_dict())
    lstm = name == "LSTM"
    dirs = 2 if bidirectional else 1
    inputs = _inputs(batch_first, initial, layers, dirs, lstm)
    if initial and lstm:
        # pass (h0, c0) as two positional tensors so both get gradients compared
        x, (h0, c0) = inputs
        ew = _Pair(em)
        tw = _TorchPair(tm)
        check_module(ew, tw, [x, h0, c0], atol=1e-5)
    else:
        check_module(em, tm, inputs, atol=1e-5)


class _Pair(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h0, c0):
        return self.rnn(x, (h0, c0))


class _TorchPair(torch.nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, h0, c0):
        return self.rnn(x, (h0, c0))


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
@pytest.mark.parametrize("layers,batch_first,initial", [(1, False, False), (2, False, True), (2, True, False),
                                                        (3, True, True)])
def test_rnn_matches_torch(name, layers, batch_first, initial):
    _check(name, layers, batch_first, initial)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_bidirectional_rnn_without_bias_matches_torch(name):
    _check(name, layers=2, batch_first=True, initial=True, bidirectional=True, bias=False)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_unbatched_rnn_matches_torch(name):
    em, tm = getattr(nn, name)(I, H, 2), getattr(torch.nn, name)(I, H, 2)
    check_module(em, tm, [rand(T, I)])


def test_lstm_long_sequence_matches_torch():
    # 37 steps exercises the recursive time split at odd lengths
    em, tm = nn.LSTM(3, 4), torch.nn.LSTM(3, 4)
    check_module(em, tm, [rand(37, 2, 3)], atol=1e-5)


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
@pytest.mark.parametrize("state", [False, True])
def test_cells_match_torch(name, state):
    em, tm = getattr(nn, name)(I, H), getattr(torch.nn, name)(I, H)
    x = rand(B, I)
    if not state:
        check_module(em, tm, [x])
    elif name == "GRUCell":
        check_module(em, tm, [x, rand(B, H, seed=2)])
    else:
        check_module(_Pair(em), _TorchPair(tm), [x, rand(B, H, seed=2), rand(B, H, seed=3)])


def test_rnn_dropout_between_layers_only_in_training():
    m = nn.LSTM(I, H, num_layers=2, dropout=0.5)
    x = ember.randn(T, B, I)
    m.eval()
    a, b = m(x)[0].detach().numpy(), m(x)[0].detach().numpy()
    np.testing.assert_array_equal(a, b)
    m.train()
    c = m(x)[0]
    assert not np.allclose(c.detach().numpy(), a)
    c.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_rnn_parameter_init_and_shape_errors():
    m = nn.GRU(I, H, 2)
    bound = 1 / np.sqrt(H)
    for p in m.parameters():
        assert np.abs(p.detach().numpy()).max() <= bound
    torch_shapes = [tuple(p.shape) for p in torch.nn.GRU(I, H, 2).parameters()]
    assert [tuple(p.shape) for p in m.parameters()] == torch_shapes
    with pytest.raises(ember.ShapeError, match="input_size"):
        m(ember.randn(T, B, I + 1))
    with pytest.raises(ember.ShapeError, match="h0"):
        m(ember.randn(T, B, I), ember.zeros(1, B, H))


def test_lstm_language_model_gradients_match_torch():
    # embedding -> 2-layer LSTM -> linear -> cross-entropy: every parameter's gradient
    def lm(lib):
        return lib.ModuleDict(dict(embed=lib.Embedding(20, 8), rnn=lib.LSTM(8, 12, 2, batch_first=True),
                                   head=lib.Linear(12, 20)))
    tl, el = lm(torch.nn), lm(nn)
    copy_weights(el, tl)
    ids = np.random.default_rng(0).integers(0, 20, size=(3, 9))

    def loss(m, lib, F):
        x = lib.tensor(ids)
        h = m["rnn"](m["embed"](x[:, :-1]))[0]
        logits = m["head"](h)
        return F.cross_entropy(logits.reshape(-1, 20), x[:, 1:].reshape(-1))
    le = loss(el, ember, nn.functional)
    lt = loss(tl, torch, torch.nn.functional)
    np.testing.assert_allclose(le.item(), lt.item(), rtol=1e-5)
    le.backward()
    lt.backward()
    for (n, ep), (_, tp) in zip(el.named_parameters(), tl.named_parameters()):
        np.testing.assert_allclose(ep.grad.numpy(), tp.grad.numpy(), atol=1e-5, rtol=1e-4, err_msg=n)
