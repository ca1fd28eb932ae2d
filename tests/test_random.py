"""ember.random: seeding, independent Generator streams, state save/restore, and the random
factories' ranges, dtypes and statistics."""

import json

import numpy as np
import pytest

import ember

DRAWS = [
    lambda g: ember.rand(3, 4, generator=g),
    lambda g: ember.randn(5, generator=g, dtype=ember.float64),
    lambda g: ember.randint(0, 10, (6,), generator=g),
    lambda g: ember.randint(7, (2, 2), generator=g),
    lambda g: ember.randperm(8, generator=g),
    lambda g: ember.normal(2.0, 0.5, (4,), generator=g),
    lambda g: ember.uniform(-1.0, 1.0, (4,), generator=g),
    lambda g: ember.rand_like(ember.zeros(3), generator=g),
    lambda g: ember.randn_like(ember.zeros(3), generator=g),
    lambda g: ember.randint_like(ember.zeros(3, dtype=ember.int32), 0, 5, generator=g),
    lambda g: ember.zeros(4).normal_(0.0, 1.0, generator=g),
    lambda g: ember.zeros(4).uniform_(0.0, 2.0, generator=g),
]


@pytest.mark.parametrize("i", range(len(DRAWS)))
def test_generator_state_reproduces_draws(i):
    g = ember.Generator(123)
    DRAWS[i](g)
    state = g.get_state()
    json.dumps(state)  # checkpoints store it as JSON
    a = DRAWS[i](g).numpy()
    b = DRAWS[i](g).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(DRAWS[i](g).numpy(), a)
    np.testing.assert_array_equal(DRAWS[i](g).numpy(), b)
    # the same seed gives the same stream
    assert not np.array_equal(a, b) or a.size == 1
    g2 = ember.Generator(123)
    DRAWS[i](g2)
    np.testing.assert_array_equal(DRAWS[i](g2).numpy(), a)


@pytest.mark.parametrize("i", range(len(DRAWS)))
def test_default_generator_is_used_without_argument(i):
    ember.manual_seed(7)
    a = DRAWS[i](None).numpy()
    ember.manual_seed(7)
    np.testing.assert_array_equal(DRAWS[i](None).numpy(), a)
    state = ember.get_rng_state()
    b = DRAWS[i](None).numpy()
    ember.set_rng_state(state)
    np.testing.assert_array_equal(DRAWS[i](None).numpy(), b)


def test_generators_are_independent_of_the_default_stream():
    ember.manual_seed(0)
    a = ember.rand(5).numpy()
    ember.manual_seed(0)
    g = ember.Generator(99)
    ember.rand(5, generator=g)  # must not move the default stream
    np.testing.assert_array_equal(ember.rand(5).numpy(), a)


def test_seeds_differ_and_initial_seed_reports():
    assert not np.array_equal(ember.Generator(1).normal((4,)), ember.Generator(2).normal((4,)))
    ember.manual_seed(42)
    assert ember.initial_seed() == 42
    g = ember.Generator().manual_seed(5)
    assert g.initial_seed() == 5
    s = ember.seed()
    assert ember.initial_seed() == s


def test_fork_gives_reproducible_distinct_streams():
    g = ember.Generator(3)
    a, b = g.fork(0), g.fork(1)
    assert not np.array_equal(a.normal((4,)), b.normal((4,)))
    again = ember.Generator(3).fork(1)
    np.testing.assert_array_equal(ember.Generator(3).fork(1).normal((4,)), again.normal((4,)))


def test_ranges_dtypes_and_statistics():
    g = ember.Generator(0)
    u = ember.rand(20000, generator=g)
    assert u.dtype is ember.float32 and 0.0 <= u.min().item() and u.max().item() < 1.0
    assert abs(u.mean().item() - 0.5) < 0.01
    n = ember.randn(20000, generator=g, dtype=ember.float64)
    assert n.dtype is ember.float64
    assert abs(n.mean().item()) < 0.03 and abs(n.std().item() - 1.0) < 0.03
    m = ember.normal(3.0, 2.0, (20000,), generator=g)
    assert abs(m.mean().item() - 3.0) < 0.06 and abs(m.std().item() - 2.0) < 0.06
    r = ember.randint(-3, 4, (5000,), generator=g)
    assert r.dtype is ember.int64 and set(r.tolist()) == set(range(-3, 4))
    p = ember.randperm(50, generator=g)
    assert p.dtype is ember.int64 and sorted(p.tolist()) == list(range(50))
    v = ember.uniform(2.0, 3.0, (1000,), generator=g)
    assert 2.0 <= v.min().item() and v.max().item() < 3.0
    assert ember.rand(2, dtype=ember.bfloat16, generator=g).dtype is ember.bfloat16
    assert ember.randint(0, 5, (3,), dtype=ember.int32, generator=g).dtype is ember.int32


def test_normal_with_tensor_mean_and_std():
    g = ember.Generator(0)
    mean = ember.tensor([0.0, 100.0, -100.0])
    x = ember.normal(mean, ember.tensor([1e-6, 1e-6, 1e-6]), generator=g)
    assert x.shape == (3,) and x.dtype is ember.float32
    np.testing.assert_allclose(x.numpy(), [0.0, 100.0, -100.0], atol=1e-3)
    y = ember.normal(mean, 1.0, generator=g)
    assert y.shape == (3,)


def test_random_factories_reject_bad_arguments():
    with pytest.raises(ember.DTypeError, match="floating"):
        ember.rand(2, dtype=ember.int64)
    with pytest.raises(ValueError, match="low < high"):
        ember.randint(5, 5, (2,))
    with pytest.raises(ember.ShapeError, match="non-negative"):
        ember.rand(-1)


def test_bernoulli_and_bernoulli_():
    g = ember.Generator(0)
    p = ember.full((20000,), 0.3)
    b = ember.bernoulli(p, generator=g)
    assert set(b.tolist()) <= {0.0, 1.0} and abs(b.mean().item() - 0.3) < 0.02
    ember.manual_seed(1)
    x = ember.zeros(1000).bernoulli_(0.5)
    assert abs(x.mean().item() - 0.5) < 0.06
