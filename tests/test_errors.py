"""Misuse of tensors and autograd raises ember's own errors with messages a user can act on."""

import numpy as np
import pytest

import ember
from ember.tensor import Tensor


def test_error_classes_subclass_builtins():
    assert issubclass(ember.ShapeError, ValueError)
    assert issubclass(ember.DTypeError, TypeError)
    assert issubclass(ember.DeviceError, RuntimeError)
    assert issubclass(ember.AutogradError, RuntimeError)
    assert issubclass(ember.IndexingError, IndexError)
    for cls in (ember.ShapeError, ember.DTypeError, ember.DeviceError, ember.AutogradError):
        assert issubclass(cls, ember.EmberError)


def test_backward_through_freed_graph_a_second_time():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(ember.AutogradError) as e:
        y.backward()
    msg = str(e.value)
    assert "second time" in msg and "retain_graph=True" in msg


def test_backward_through_shared_part_of_freed_graph():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    h.sum().backward()
    with pytest.raises(ember.AutogradError, match="second time"):
        (h * 2).sum().backward()  # h's node was freed by the first backward


def test_requires_grad_on_integer_tensor():
    with pytest.raises(ember.AutogradError) as e:
        ember.tensor([1, 2], requires_grad=True)
    assert "floating point" in str(e.value) and "int64" in str(e.value)
    with pytest.raises(ember.AutogradError, match="floating point"):
        ember.arange(3).requires_grad_()


def test_non_scalar_backward_needs_gradient():
    x = ember.ones(2, 3, requires_grad=True)
    with pytest.raises(ember.AutogradError) as e:
        (x * 2).backward()
    msg = str(e.value)
    assert "scalar outputs" in msg and "(2, 3)" in msg and "gradient=" in msg


def test_gradient_of_wrong_shape():
    x = ember.ones(2, 3, requires_grad=True)
    with pytest.raises(ember.ShapeError, match=r"gradient has shape \(3,\), expected .*\(2, 3\)"):
        (x * 2).backward(gradient=ember.ones(3))


def test_in_place_change_of_a_saved_tensor():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = h.exp()  # exp's backward needs its output; mul's needs h's inputs
    z = (h * h).sum()
    h.mul_(3)
    with pytest.raises(ember.AutogradError) as e:
        z.backward()
    msg = str(e.value)
    assert "modified by an in-place operation" in msg and "version" in msg
    del y


def test_in_place_change_of_a_saved_input_without_grad():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    w = ember.tensor([3.0, 4.0])
    y = (x * w).sum()
    w.add_(1)
    with pytest.raises(ember.AutogradError, match="modified by an in-place operation"):
        y.backward()


def test_in_place_on_leaf_requiring_grad():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ember.AutogradError) as e:
        x.add_(1)
    assert "leaf" in str(e.value) and "no_grad" in str(e.value)
    with ember.no_grad():
        x.add_(1)  # the optimizer's way: allowed
    assert x.detach().tolist() == [2.0, 3.0]


def test_device_mismatch():
    a = Tensor._make(np.zeros(3, dtype=np.float32), ember.float32, ember.Device("opencl"))
    b = ember.zeros(3)
    with pytest.raises(ember.DeviceError) as e:
        a + b
    msg = str(e.value)
    assert "opencl" in msg and "cpu" in msg and "device" in msg


def test_unavailable_device():
    with pytest.raises(ember.DeviceError, match="not available"):
        ember.zeros(2).to("cuda")
    with pytest.raises(ember.DeviceError, match="unknown device type"):
        ember.device("tpu")


def test_backward_of_tensor_without_grad():
    with pytest.raises(ember.AutogradError, match="does not require grad"):
        ember.ones(2).sum().backward()
    with ember.no_grad():
        y = ember.ones(2, requires_grad=True).sum()
    with pytest.raises(ember.AutogradError, match="no_grad"):
        y.backward()


def test_grad_of_input_not_requiring_grad():
    x = ember.ones(2, requires_grad=True)
    w = ember.ones(2)
    with pytest.raises(ember.AutogradError, match="input 1 .* does not require grad"):
        ember.autograd.grad((x * w).sum(), [x, w])


def test_hook_on_tensor_without_grad():
    with pytest.raises(ember.AutogradError, match="does not require grad"):
        ember.ones(2).register_hook(lambda g: g)
    with pytest.raises(ember.AutogradError, match="non-leaf"):
        (ember.ones(2, requires_grad=True) * 2).register_post_accumulate_grad_hook(lambda t: None)


def test_ragged_data_and_bad_sizes():
    with pytest.raises(ember.ShapeError, match="rectangular"):
        ember.tensor([[1, 2], [3]])
    with pytest.raises(ember.ShapeError, match="non-negative"):
        ember.zeros(2, -1)
    with pytest.raises(ember.DTypeError, match="cannot make a tensor"):
        ember.tensor(["a"])


def test_item_of_many_elements():
    with pytest.raises(ValueError, match="expected exactly 1"):
        ember.ones(3).item()
