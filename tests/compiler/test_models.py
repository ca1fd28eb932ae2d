"""Every model in ember.models compiled against eager: forward outputs and 10 whole training steps
(forward, backward, optimizer step, zero_grad) at relative error <= 1e-5 in float32."""

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import optim
from ember.compiler import optim_kernels
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


def _model(name):
    ember.manual_seed(0)
    if name == "mlp":
        return MLP(MLPConfig(in_features=20, hidden=(32, 32), num_classes=5)), ember.randn(16, 20), \
            ember.randint(0, 5, (16,))
    if name == "convnet":
        return ConvNet(ConvNetConfig(channels=(4, 8), hidden=16)), ember.randn(4, 1, 28, 28), \
            ember.randint(0, 10, (4,))
    if name == "resnet":
        return ResNet(ResNetConfig(layers=(1, 1), width=4)), ember.randn(2, 3, 16, 16), ember.randint(0, 10, (2,))
    if name == "lstm":
        return LSTMLM(LSTMConfig(vocab_size=20, n_embd=8, hidden_size=16, num_layers=1, block_size=8)), \
            ember.randint(0, 20, (2, 8)), ember.randint(0, 20, (2, 8))
    return GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)), \
        ember.randint(0, 50, (4, 16)), ember.randint(0, 50, (4, 16))


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


@pytest.mark.parametrize("name", ["mlp", "convnet", "gpt", "lstm", "resnet"])
def test_compiled_forward_matches_eager(name):
    m, x, _ = _model(name)
    m.eval()
    with ember.no_grad():
        cf = ember.compile(m)
        cf(x)
        got, want = _logits(cf(x)), _logits(m(x))
    assert _rel(got.numpy(), want.numpy()) <= 1e-5
    assert cf.traces == 1


def _train(name, compiled: bool, make_opt, steps=10):
    m, x, y = _model(name)
    ember.manual_seed(1)  # a second batch: every step must read its own batch, never a traced one
    x2 = ember.randn(*x.shape) if x.dtype.is_floating_point else ember.randint(0, int(x.amax()) + 1, x.shape)
    y2 = ember.randint(0, int(y.amax()) + 1, y.shape)
    batches = [(x, y), (x2, y2)]
    opt = make_opt(m.parameters())

    def step(x, y):
        out = _logits(m(x))
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    fn = ember.compile(step) if compiled else step
    losses = [float(fn(*batches[i % 2]).detach().numpy()) for i in range(steps)]
    # parameters and buffers (batch-norm running statistics are updated in place too)
    return losses, [t.detach().numpy().copy() for t in m.state_dict().values()], fn


@pytest.mark.parametrize("name,make_opt", [
    ("mlp", lambda p: optim.AdamW(p, lr=1e-2)),
    ("mlp", lambda p: optim.SGD(p, lr=0.1, momentum=0.9)),
    ("gpt", lambda p: optim.SGD(p, lr=0.1, momentum=0.9)),
])
def test_ten_compiled_training_steps_match_ten_eager_steps(name, make_opt):
    le, pe, _ = _train(name, False, make_opt)
    lc, pc, fn = _train(name, True, make_opt)
    entry = list(fn.entries.values())[0]
    assert fn.traces == 1 and entry.plan is not None  # really compiled
    assert entry.report.get("guard_failures", 0) == 0  # and replayed, never fell back to eager
    assert sum(s.stats["fallbacks"] for s in entry.plan.kernel_steps) == 0
    assert max(abs(a - b) / abs(a) for a, b in zip(lc, le)) <= 1e-5
    assert lc[-1] < lc[0] or lc[-2] < lc[1]  # it trained
    for a, b in zip(pc, pe):
        assert _rel(a, b) <= 1e-5


def test_gpt_adamw_steps_match_except_rounding_noise_parameters():
    """AdamW normalises each gradient element: the key part of c_attn.bias has a true gradient of
    exactly 0 (softmax ignores a shift of all keys), so its update is sign(rounding noise) * lr in
    eager and compiled alike. Every other parameter and the loss agree to 1e-5."""
    make = lambda p: optim.AdamW(p, lr=1e-3)  # noqa: E731
    le, pe, _ = _train("gpt", False, make)
    lc, pc, _ = _train("gpt", True, make)
    assert max(abs(a - b) / abs(a) for a, b in zip(lc, le)) <= 1e-5
    names = [n for n, _ in _model("gpt")[0].named_parameters()]
    for n, a, b in zip(names, pc, pe):
        if not n.endswith("attn.c_attn.bias"):
            assert _rel(a, b) <= 1e-5, n


@pytest.mark.parametrize("name", ["convnet", "lstm", "resnet"])
def test_ten_training_steps_of_the_other_models(name):
    make = lambda p: optim.SGD(p, lr=0.05, momentum=0.9)  # noqa: E731
    le, pe, _ = _train(name, False, make)
    lc, pc, _ = _train(name, True, make)
    assert max(abs(a - b) / abs(a) for a, b in zip(lc, le)) <= 1e-5
    for a, b in zip(pc, pe):
        assert _rel(a, b) <= 1e-5


def test_fused_adam_state_and_step_count_match_eager():
    le, pe, _ = _train("mlp", False, lambda p: optim.Adam(p, lr=1e-2, weight_decay=0.1), steps=3)
    lc, pc, fn = _train("mlp", True, lambda p: optim.Adam(p, lr=1e-2, weight_decay=0.1), steps=3)
    for a, b in zip(pc, pe):
        assert _rel(a, b) <= 1e-5
    assert list(fn.entries.values())[0].report["steps"]["optimizer_steps"] == 1


@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9), dict(momentum=0.9, nesterov=True, weight_decay=0.01),
                                dict(momentum=0.5, dampening=0.3, maximize=True)])
def test_fused_sgd_steps_equal_eager(kw):
    """The fused SGD loop (optim_kernels.py) against eager SGD over 5 steps: a wrong momentum,
    dampening, Nesterov or weight-decay term would be off by far more than rounding."""
    runs = []
    for compiled in (False, True):
        m, x, y = _model("mlp")
        opt = optim.SGD(m.parameters(), lr=0.05, **kw)

        def step(x, y, m=m, opt=opt):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss
        fn = ember.compile(step) if compiled else step
        losses = [float(fn(x, y)) for _ in range(5)]
        if compiled:
            assert optim_kernels.fusable(opt) and list(fn.entries.values())[0].plan is not None
        runs.append((losses, [p.detach().numpy().copy() for p in m.parameters()]))
    assert _rel(runs[1][0], runs[0][0]) <= 1e-5
    for a, b in zip(runs[1][1], runs[0][1]):
        assert _rel(a, b) <= 1e-5


def test_attention_gradient_is_handed_out_without_assembling_it():
    """In a compiled GPT step the split of the qkv projection's gradient copies nothing: the fused
    attention backward already wrote dq, dk, dv side by side (assemble_in_place_step) and summed
    them into the projection's bias gradient, and the step still equals eager."""
    from ember.compiler import library
    if library.load() is None:
        pytest.skip("needs library.c (a C compiler and a BLAS)")
    runs = []
    for compiled in (False, True):
        ember.manual_seed(0)
        m = GPT(GPTConfig(vocab_size=40, block_size=64, n_layer=1, n_head=2, n_embd=64))
        opt = optim.SGD(m.parameters(), lr=0.1)
        x, y = ember.randint(0, 40, (4, 64)), ember.randint(0, 40, (4, 64))

        def step(x, y, m=m, opt=opt):
            opt.zero_grad()
            loss = F.cross_entropy(m(x).reshape(-1, 40), y.reshape(-1))
            loss.backward()
            opt.step()
            return loss
        fn = ember.compile(step) if compiled else step
        losses = [float(fn(x, y)) for _ in range(4)]
        runs.append((losses, [p.detach().numpy().copy() for p in m.parameters()]))
        if compiled:  # traced without gradients, then with (the signature says which exist), replayed twice
            assert fn.traces == 2
            plan = list(fn.entries.values())[-1].plan
            steps = [s for s in plan.steps if hasattr(s, "copy_step")]
            assert len(steps) == 1 and steps[0].stats["in_place"] == 2 and steps[0].stats["calls"] == 0
            # the qkv bias gradient comes out of the attention backward (passes/epilogue.py)
            assert [n.name for n in plan.graph.nodes].count("sdpa_backward_sum") == 1
    assert _rel(runs[1][0], runs[0][0]) <= 1e-5
    for a, b in zip(runs[1][1], runs[0][1]):
        assert _rel(a, b) <= 1e-5


def test_the_address_cache_follows_the_arrays():
    """library.Addresses (the products' and the optimizer step's address cache) hands back an
    array's data address, the remembered one only for the very same array object, and keeps one
    array per slot."""
    from ember.compiler.library import Addresses
    cache = Addresses()
    a, b = np.zeros(1000, np.float32), np.zeros(1000, np.float32)
    assert cache(0, a) == a.ctypes.data and cache(1, b) == b.ctypes.data and cache(0, a) == a.ctypes.data
    assert cache(0, a[10:]) == a.ctypes.data + 40  # another array in slot 0: read again
    for _ in range(100):
        fresh = np.zeros(1000, np.float32)
        assert cache(2, fresh) == fresh.ctypes.data
    assert len(cache) == 3 and cache[2][0] is fresh
