"""ember.models: configs, shapes, parameter counts, and forward+backward parity with PyTorch twins that
get the same weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import ember
from ember import models
from ember.models import (
    GPT,
    LSTMLM,
    MLP,
    ConvNet,
    ConvNetConfig,
    GPTConfig,
    LSTMConfig,
    MLPConfig,
    ResNet,
    ResNetConfig,
)
from ember.models.sampling import sample_next, top_k_filter

# --- PyTorch twins (same module names, so state dicts line up key for key) ----------------------


class TorchMLP(tnn.Module):
    def __init__(self, sizes):
        super().__init__()
        layers = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [tnn.Linear(a, b), tnn.ReLU()]
        layers.append(tnn.Linear(sizes[-2], sizes[-1]))
        self.net = tnn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.reshape(x.shape[0], -1))


class TorchConvNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.features = tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                                       tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2))
        self.classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(3136, 128), tnn.ReLU(),
                                         tnn.Linear(128, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class TorchBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.shortcut = tnn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                           tnn.BatchNorm2d(cout))

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        return TF.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class TorchResNet(tnn.Module):
    def __init__(self, c: ResNetConfig):
        super().__init__()
        self.conv1 = tnn.Conv2d(c.in_channels, c.width, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(c.width)
        stages, cin = [], c.width
        for s, n in enumerate(c.layers):
            cout = c.width * 2 ** s
            blocks = []
            for b in range(n):
                blocks.append(TorchBlock(cin, cout, 2 if (s > 0 and b == 0) else 1))
                cin = cout
            stages.append(tnn.Sequential(*blocks))
        self.layers = tnn.Sequential(*stages)
        self.fc = tnn.Linear(cin, c.num_classes)

    def forward(self, x):
        return self.fc(self.layers(TF.relu(self.bn1(self.conv1(x)))).mean(dim=(2, 3)))


class TorchAttention(tnn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.n_head = c.n_head
        self.c_attn = tnn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = tnn.Linear(c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # written out (not F.scaled_dot_product_attention): the twin must not share a kernel under test
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class TorchMLPBlock(tnn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.c_fc = tnn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.c_proj = tnn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)

    def forward(self, x):
        return self.c_proj(TF.gelu(self.c_fc(x), approximate="tanh"))


class TorchGPTBlock(tnn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.ln_1 = tnn.LayerNorm(c.n_embd, eps=1e-5, bias=c.bias)
        self.attn = TorchAttention(c)
        self.ln_2 = tnn.LayerNorm(c.n_embd, eps=1e-5, bias=c.bias)
        self.mlp = TorchMLPBlock(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(tnn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(c.vocab_size, c.n_embd), wpe=tnn.Embedding(c.block_size, c.n_embd),
            h=tnn.ModuleList([TorchGPTBlock(c) for _ in range(c.n_layer)]),
            ln_f=tnn.LayerNorm(c.n_embd, eps=1e-5, bias=c.bias)))
        self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        T = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T))
        for b in self.transformer.h:
            x = b(x)
        return self.lm_head(self.transformer.ln_f(x))


class TorchLSTMLM(tnn.Module):
    def __init__(self, c: LSTMConfig):
        super().__init__()
        self.embedding = tnn.Embedding(c.vocab_size, c.n_embd)
        self.lstm = tnn.LSTM(c.n_embd, c.hidden_size, num_layers=c.num_layers, batch_first=True)
        self.head = tnn.Linear(c.hidden_size, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embedding.weight

    def forward(self, idx):
        return self.head(self.lstm(self.embedding(idx))[0])


# --- helpers ---------------------------------------------------------------------------------------


def _copy_to_torch(model: ember.nn.Module, twin: tnn.Module) -> None:
    """Load ember's weights and buffers into the twin (float64), checking the key sets agree."""
    sd = {k: torch.from_numpy(np.array(v.detach().numpy())) for k, v in model.state_dict().items()}
    mine, theirs = set(sd), set(twin.state_dict())
    assert mine == theirs, (sorted(mine - theirs), sorted(theirs - mine))
    twin.load_state_dict(sd)


def _assert_close(e: ember.Tensor, t: torch.Tensor, tol=1e-9, what=""):
    a, b = np.asarray(e.detach().numpy(), np.float64), t.detach().numpy().astype(np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=what)


def _parity(model, twin, x_np, target_np, tol=1e-9):
    """Forward (logits), cross-entropy loss and every parameter gradient agree in float64."""
    model.double()
    twin.double()
    _copy_to_torch(model, twin)
    ex = ember.from_numpy(x_np.copy())
    tx = torch.from_numpy(x_np.copy())
    el, tl = model(ex), twin(tx)
    _assert_close(el, tl, tol, "logits")
    et, tt = ember.from_numpy(target_np), torch.from_numpy(target_np)
    eloss = ember.nn.functional.cross_entropy(el.reshape(-1, el.shape[-1]), et.reshape(-1))
    tloss = TF.cross_entropy(tl.reshape(-1, tl.shape[-1]), tt.reshape(-1))
    _assert_close(eloss, tloss, tol, "loss")
    eloss.backward()
    tloss.backward()
    tparams = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        _assert_close(p.grad, tparams[name].grad, tol, f"grad of {name}")
    return model, twin


rng = np.random.default_rng(0)


# --- configs -----------------------------------------------------------------------------------------


def test_gpt_w3_config_has_exactly_826368_parameters():
    m = GPT(GPTConfig())
    assert m.num_parameters() == 826_368
    assert sum(p.numel() for p in m.parameters()) == 826_368
    tied = GPT(GPTConfig(tie_weights=True))
    assert tied.lm_head.weight is tied.transformer.wte.weight
    assert tied.num_parameters() == 826_368 - 65 * 128
    assert m.num_parameters(non_embedding=True) == 826_368 - 128 * 128


@pytest.mark.parametrize("cls, kwargs, msg", [
    (GPTConfig, dict(n_embd=130, n_head=4), r"GPTConfig.n_embd \(130\) must be divisible by GPTConfig.n_he"),
    (GPTConfig, dict(n_layer=0), r"GPTConfig.n_layer must be an int >= 1, got 0"),
    (GPTConfig, dict(dropout=1.5), r"GPTConfig.dropout must be a probability"),
    (GPTConfig, dict(bias="yes"), r"GPTConfig.bias must be True or False"),
    (MLPConfig, dict(hidden=(512, -1)), r"MLPConfig.hidden must be a tuple"),
    (MLPConfig, dict(num_classes=1), r"MLPConfig.num_classes must be an int >= 2"),
    (ConvNetConfig, dict(image_size=30), r"ConvNetConfig.image_size must be divisible by 4"),
    (ResNetConfig, dict(layers=()), r"ResNetConfig.layers must be a tuple of at least 1"),
    (LSTMConfig, dict(tie_weights=True, n_embd=64, hidden_size=128), r"LSTMConfig.tie_weights needs n_embd"),
    (LSTMConfig, dict(vocab_size=2.5), r"LSTMConfig.vocab_size must be an int"),
])
def test_config_errors_name_the_field(cls, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        cls(**kwargs)


def test_configs_are_frozen_and_lists_become_tuples():
    c = MLPConfig(hidden=[32, 16])
    assert c.hidden == (32, 16)
    hash(c)
    with pytest.raises(AttributeError):
        c.hidden = (1,)


def test_get_model_registry():
    m = models.get_model("gpt", {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 16})
    assert isinstance(m, GPT) and len(m.transformer.h) == 1
    assert isinstance(models.get_model("mlp"), MLP)
    assert isinstance(models.get_model("lstm", LSTMConfig(hidden_size=32, n_embd=16)), LSTMLM)
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        models.get_model("vgg")
    with pytest.raises(ValueError, match="GPTConfig has no field 'layers'"):
        models.get_model("gpt", {"layers": 2})
    with pytest.raises(TypeError, match="config must be a MLPConfig"):
        models.get_model("mlp", GPTConfig())


# --- shapes -----------------------------------------------------------------------------------------


def test_forward_shapes():
    x = ember.randn(3, 1, 28, 28)
    assert MLP()(x).shape == (3, 10)
    assert ConvNet()(x).shape == (3, 10)
    assert ConvNet(ConvNetConfig(in_channels=3, image_size=32))(ember.randn(2, 3, 32, 32)).shape == (2, 10)
    r = ResNet(ResNetConfig(width=4, layers=(1, 1, 1)))
    assert r(ember.randn(2, 3, 32, 32)).shape == (2, 10)
    idx = ember.randint(0, 65, (2, 9))
    assert GPT(GPTConfig(n_layer=1, n_embd=32, block_size=16))(idx).shape == (2, 9, 65)
    assert LSTMLM(LSTMConfig(n_embd=16, hidden_size=24, num_layers=2))(idx).shape == (2, 9, 65)


def test_resnet18_layout():
    m = ResNet()
    assert m.num_parameters() == 11_173_962  # the CIFAR ResNet-18 of torchvision-style implementations
    assert [len(s) for s in m.layers] == [2, 2, 2, 2]


def test_gpt_rejects_too_long_context():
    m = GPT(GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8))
    with pytest.raises(ValueError, match="longer than block_size 8"):
        m(ember.zeros(1, 9, dtype=ember.int64))


def test_gpt_init_statistics():
    m = GPT(GPTConfig(n_layer=4))
    w = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    assert abs(w["transformer.h.0.mlp.c_fc.weight"].std() - 0.02) < 0.002
    assert abs(w["transformer.wte.weight"].std() - 0.02) < 0.002
    for k in ("transformer.h.0.attn.c_proj.weight", "transformer.h.3.mlp.c_proj.weight"):
        assert abs(w[k].std() - 0.02 / math.sqrt(8)) < 0.001, k
    assert np.all(w["transformer.h.0.attn.c_attn.bias"] == 0)
    assert np.all(w["transformer.ln_f.weight"] == 1)


# --- parity with PyTorch ------------------------------------------------------------------------------


def test_mlp_parity_with_torch():
    x = rng.standard_normal((4, 1, 28, 28))
    _parity(MLP(), TorchMLP([784, 512, 512, 10]), x, rng.integers(0, 10, 4))


def test_convnet_parity_with_torch():
    x = rng.standard_normal((2, 1, 28, 28))
    _parity(ConvNet(), TorchConvNet(), x, rng.integers(0, 10, 2))


def test_resnet_parity_with_torch_in_train_mode():
    c = ResNetConfig(width=4, layers=(1, 2))
    m, t = _parity(ResNet(c), TorchResNet(c), rng.standard_normal((3, 3, 16, 16)), rng.integers(0, 10, 3),
                   tol=1e-8)
    tsd = t.state_dict()
    for k, v in m.state_dict().items():  # running statistics moved the same way
        if "running" in k:
            _assert_close(v, tsd[k], 1e-9, k)
    m.eval()
    t.eval()
    x = rng.standard_normal((2, 3, 16, 16))
    _assert_close(m(ember.from_numpy(x)), t(torch.from_numpy(x)), 1e-9, "eval logits")


@pytest.mark.parametrize("tie, bias", [(False, True), (True, False)])
def test_gpt_parity_with_torch_twin(tie, bias):
    c = GPTConfig(vocab_size=23, block_size=12, n_layer=2, n_head=2, n_embd=16, bias=bias, tie_weights=tie)
    idx = rng.integers(0, 23, (3, 10))
    _parity(GPT(c), TorchGPT(c), idx, rng.integers(0, 23, (3, 10)))


def test_gpt_w3_parity_float32():
    m, t = GPT(GPTConfig()), TorchGPT(GPTConfig())
    _copy_to_torch(m, t)
    idx = rng.integers(0, 65, (2, 128))
    _assert_close(m(ember.from_numpy(idx)), t(torch.from_numpy(idx)), 1e-4, "W3 logits")


@pytest.mark.parametrize("tie", [False, True])
def test_lstm_parity_with_torch(tie):
    c = LSTMConfig(vocab_size=17, n_embd=12, hidden_size=12 if tie else 20, num_layers=2, tie_weights=tie)
    _parity(LSTMLM(c), TorchLSTMLM(c), rng.integers(0, 17, (3, 7)), rng.integers(0, 17, (3, 7)))


def test_dropout_only_in_training_mode():
    m = GPT(GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, dropout=0.5))
    idx = ember.randint(0, 65, (2, 8))
    m.eval()
    a, b = m(idx).detach().numpy(), m(idx).detach().numpy()
    assert np.array_equal(a, b)
    m.train()
    assert not np.array_equal(m(idx).detach().numpy(), a)


# --- generation ---------------------------------------------------------------------------------------


def _greedy_torch(twin, idx, n, block):
    with torch.no_grad():
        for _ in range(n):
            logits = twin(idx[:, -block:])[:, -1]
            idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], 1)
    return idx


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_generate_greedy_matches_torch_and_crops_context(name):
    if name == "gpt":
        c = GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=16)
        m, t = GPT(c), TorchGPT(c)
    else:
        c = LSTMConfig(vocab_size=11, n_embd=8, hidden_size=8, num_layers=1, block_size=6)
        m, t = LSTMLM(c), TorchLSTMLM(c)
    m.double()
    t.double()
    _copy_to_torch(m, t)
    prompt = rng.integers(0, 11, (2, 4))
    out = m.generate(ember.from_numpy(prompt), 9, temperature=0.0)  # runs past block_size: must crop
    assert out.shape == (2, 13) and out.dtype is ember.int64
    assert np.array_equal(out.numpy()[:, :4], prompt)
    assert np.array_equal(out.numpy(), _greedy_torch(t, torch.from_numpy(prompt), 9, 6).numpy())
    assert m.training  # generate restores the mode


def test_generate_sampling_is_reproducible_with_a_generator():
    m = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    idx = ember.zeros(3, 1, dtype=ember.int64)
    a = m.generate(idx, 10, generator=ember.Generator(5)).numpy()
    b = m.generate(idx, 10, generator=ember.Generator(5)).numpy()
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() < 11
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        m.generate(idx, 1, top_k=0)


def test_top_k_filter_keeps_the_k_largest():
    logits = ember.tensor([[0.1, 3.0, -1.0, 2.0, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0]])
    out = top_k_filter(logits, 2).numpy()
    assert np.array_equal(np.isfinite(out), [[False, True, False, True, False],
                                             [True, True, False, False, False]])
    assert np.array_equal(top_k_filter(logits, 10).numpy(), logits.numpy())


def test_sample_next_follows_the_distribution():
    p = np.array([0.1, 0.0, 0.6, 0.3])
    logits = ember.tensor(np.log(np.maximum(p, 1e-30))[None].repeat(20000, 0), dtype=ember.float32)
    draws = sample_next(logits, generator=ember.Generator(1)).numpy().ravel()
    freq = np.bincount(draws, minlength=4) / draws.size
    assert freq[1] == 0
    np.testing.assert_allclose(freq, p, atol=0.015)
    top1 = sample_next(logits[:5], top_k=1, generator=ember.Generator(2)).numpy().ravel()
    assert np.all(top1 == 2)


# --- weights through safetensors -------------------------------------------------------------------


def test_model_weights_round_trip_through_safetensors(tmp_path):
    c = GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, tie_weights=True)
    m = GPT(c)
    ember.save(m.state_dict(), tmp_path / "gpt.safetensors")
    ember.manual_seed(123)
    m2 = GPT(c)
    m2.load_state_dict(ember.load(tmp_path / "gpt.safetensors"))
    idx = ember.randint(0, 65, (2, 8))
    assert np.array_equal(m(idx).detach().numpy(), m2(idx).detach().numpy())
    assert m2.lm_head.weight is m2.transformer.wte.weight
