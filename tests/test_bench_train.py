"""bench/train.py: the PyTorch twins are the same networks as ember's W1/W2/W3 models (same parameter
names, shapes and count), they compute the same logits from the same weights, and the first two
training steps give the same losses. No speed is asserted: benchmarks print figures, tests don't."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _import_bench_train():
    """Import bench/train.py as the script sees its sibling (`from common import ...`), then take the
    generic names back out of sys.path and sys.modules."""
    bench = str(Path(__file__).resolve().parents[1] / "bench")
    names = ("common", "train")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    sys.path.insert(0, bench)
    try:
        mod = importlib.import_module("train")
    finally:
        sys.path.remove(bench)
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
    return mod


bench_train = _import_bench_train()


def test_gpt_twin_has_the_826368_parameters_of_benchmarks_md():
    from ember import models
    twin = bench_train.torch_gpt()
    assert sum(p.numel() for p in twin.parameters()) == 826_368
    assert models.get_model("gpt").num_parameters() == 826_368


@pytest.mark.parametrize("workload,model", [("mlp", "mlp"), ("cnn", "convnet"), ("gpt-train", "gpt")])
def test_twin_state_dict_matches_ember_model(workload, model):
    from ember import models
    em = models.get_model(model).state_dict()
    th = bench_train.WORKLOADS[workload][1]().state_dict()
    assert list(em) == list(th)
    assert all(tuple(em[k].shape) == tuple(th[k].shape) for k in em)


@pytest.mark.parametrize("workload", ["mlp", "cnn", "gpt-train"])
def test_one_step_gives_the_same_loss_and_weights_as_pytorch(workload):
    em_step, th_step, items, (l_em, l_th) = bench_train.build(workload)
    assert items == {"mlp": 128, "cnn": 64, "gpt-train": 16 * 128}[workload]
    assert l_em == pytest.approx(l_th, rel=1e-5)
    # the step's closures hold the models; compare the weights after that first step through the
    # second step's loss (same batch cycle on both sides)
    assert em_step().item() == pytest.approx(th_step().item(), rel=1e-4)


def test_synthetic_batches_have_the_workload_shapes():
    rng = np.random.default_rng(0)
    (x, y), *_ = bench_train.synthetic_batches("gpt-train", 16, rng)
    assert x.shape == y.shape == (16, 128) and x.max() < 65
    assert np.array_equal(x[:, 1:], y[:, :-1])
    (x, y), *_ = bench_train.synthetic_batches("cnn", 64, rng)
    assert x.shape == (64, 1, 28, 28) and y.shape == (64,)


@pytest.mark.parametrize("workload,model", [("mlp", "mlp"), ("cnn", "convnet"), ("gpt-train", "gpt")])
def test_twin_computes_the_same_logits_from_the_same_weights(workload, model):
    import ember
    from ember import models
    ember.manual_seed(1)
    em = models.get_model(model)
    if workload == "gpt-train":
        # the N(0, 0.02) init keeps every activation near 0, where the exact and tanh GELUs (or a
        # missing causal mask's effect) hardly differ: larger weights make the comparison bite
        with ember.no_grad():
            for p in em.parameters():
                p.mul_(3.0)
    th = bench_train.WORKLOADS[workload][1]()
    th.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in em.state_dict().items()})
    batch = bench_train.WORKLOADS[workload][2]
    (x, _), *_ = bench_train.synthetic_batches(workload, batch, np.random.default_rng(1))
    got = em(ember.tensor(x)).detach().numpy()
    with torch.no_grad():
        want = th(torch.from_numpy(x)).numpy()
    # checked to fail with nn.GELU() (exact erf) in the torch twin in place of the tanh GELU
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
