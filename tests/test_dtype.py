"""dtypes and type promotion, checked against torch.promote_types / torch.result_type over every
pair, with dimensioned tensors, zero-dim tensors and Python scalars."""

import itertools
import json

import numpy as np
import pytest
import torch

import ember

NAMES = ["float32", "float64", "float16", "bfloat16", "int8", "uint8", "int16", "int32", "int64", "bool"]
SCALARS = [True, 3, 2.5]


def E(name):
    return ember.bool if name == "bool" else getattr(ember, name)


def T(name):
    return getattr(torch, name)


def name_of(t_dtype) -> str:
    return str(t_dtype).replace("torch.", "")


def make(lib, name, ndim):
    shape = (2,) * ndim
    return lib.ones(shape, dtype=E(name) if lib is ember else T(name))


@pytest.mark.parametrize("a,b", list(itertools.product(NAMES, NAMES)))
def test_promote_types_matches_torch(a, b):
    assert ember.promote_types(E(a), E(b)).name == name_of(torch.promote_types(T(a), T(b)))


@pytest.mark.parametrize("nd_a,nd_b", [(1, 1), (1, 0), (0, 1), (0, 0), (2, 0)])
def test_result_type_of_tensor_pairs_matches_torch(nd_a, nd_b):
    bad = []
    for a, b in itertools.product(NAMES, NAMES):
        e = ember.result_type(make(ember, a, nd_a), make(ember, b, nd_b))
        t = torch.result_type(make(torch, a, nd_a), make(torch, b, nd_b))
        if e.name != name_of(t):
            bad.append((a, b, e, t))
    assert not bad


@pytest.mark.parametrize("ndim", [0, 1])
def test_result_type_with_python_scalars_matches_torch(ndim):
    bad = []
    for a, s in itertools.product(NAMES, SCALARS):
        for order in ((0, 1), (1, 0)):
            e_ops = [make(ember, a, ndim), s]
            t_ops = [make(torch, a, ndim), s]
            e = ember.result_type(*[e_ops[i] for i in order])
            t = torch.result_type(*[t_ops[i] for i in order])
            if e.name != name_of(t):
                bad.append((a, s, order, e, t))
    assert not bad


def test_result_type_of_three_operands_mixed():
    cases = [
        (make(ember, "int32", 1), make(ember, "float64", 0), 2),
        (make(ember, "uint8", 1), make(ember, "int8", 0), True),
        (make(ember, "bool", 1), make(ember, "int16", 0), 2.5),
        (make(ember, "float16", 1), make(ember, "bfloat16", 0), 1),
    ]
    for ops in cases:
        tops = [torch.ones(o.shape, dtype=T(o.dtype.name)) if isinstance(o, ember.Tensor) else o for o in ops]
        # torch.result_type takes two operands; torch.add of three folds left to right, which for
        # these cases gives the same dtype as PyTorch's n-ary promotion
        t = (tops[0] + tops[1] + tops[2]).dtype
        assert ember.result_type(*ops).name == name_of(t)


@pytest.mark.parametrize("a,b", list(itertools.product(NAMES, NAMES)))
def test_binary_op_result_dtype_matches_torch(a, b):
    e = make(ember, a, 1) * make(ember, b, 1)
    t = make(torch, a, 1) * make(torch, b, 1)
    assert e.dtype.name == name_of(t.dtype)
    e0 = make(ember, a, 1) + make(ember, b, 0)
    t0 = make(torch, a, 1) + make(torch, b, 0)
    assert e0.dtype.name == name_of(t0.dtype)


def test_scalar_promotion_follows_default_dtype():
    try:
        ember.set_default_dtype(ember.float64)
        assert ember.result_type(ember.ones(2, dtype=ember.int32), 1.5) is ember.float64
        assert ember.tensor([1.5]).dtype is ember.float64
        assert ember.result_type(ember.ones(2, dtype=ember.float16), 1.5) is ember.float16
    finally:
        ember.set_default_dtype(ember.float32)
    assert ember.tensor([1.5]).dtype is ember.float32
    with pytest.raises(ember.DTypeError, match="floating"):
        ember.set_default_dtype(ember.int32)


def test_numpy_scalars_count_as_python_numbers():
    assert ember.result_type(ember.ones(2, dtype=ember.int32), np.float64(1.5)) is ember.float32
    assert ember.result_type(ember.ones(2, dtype=ember.float16), np.int64(2)) is ember.float16


def test_dtype_attributes_and_names():
    for n in NAMES:
        d = E(n)
        t = T(n)
        assert d.is_floating_point == t.is_floating_point
        assert d.itemsize == t.itemsize
        assert repr(d) == f"ember.{n}"
        assert ember.dtype.get_dtype(n) is d
    assert ember.dtype.get_dtype("float") is ember.float32
    assert ember.dtype.get_dtype("long") is ember.int64
    assert ember.dtype.get_dtype(np.float16) is ember.float16
    assert ember.dtype.get_dtype(float) is ember.float32
    assert ember.dtype.get_dtype(int) is ember.int64
    assert ember.dtype.get_dtype(bool) is ember.bool
    assert ember.half is ember.float16 and ember.double is ember.float64 and ember.long is ember.int64


def test_dtype_errors_name_what_is_allowed():
    with pytest.raises(ember.DTypeError, match="unknown dtype name 'floaty'"):
        ember.dtype.get_dtype("floaty")
    with pytest.raises(ember.DTypeError, match="no ember equivalent"):
        ember.from_numpy(np.zeros(2, dtype=np.complex64))


def test_dtype_pickles_to_the_same_object():
    import pickle
    assert pickle.loads(pickle.dumps(ember.bfloat16)) is ember.bfloat16
    json.dumps(ember.float32.name)


def test_low_precision_storage_rounds_like_torch():
    vals = [0.1, 1 / 3, 100.7, -2.5e-3, 250.0]
    for n in ("float16", "bfloat16"):
        e = ember.tensor(vals).to(E(n))
        t = torch.tensor(vals).to(T(n))
        np.testing.assert_array_equal(e.float().numpy(), t.float().numpy())
        # arithmetic computes in float32 and rounds once, as PyTorch does on cpu
        np.testing.assert_array_equal((e * e + e).float().numpy(), (t * t + t).float().numpy())
