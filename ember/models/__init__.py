"""ember.models: ready-made networks, each a plain nn.Module built from a frozen, validated config.

`get_model("gpt", GPTConfig(n_layer=2))` or `get_model("gpt", {"n_layer": 2})` builds one by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .convnet import ConvNet, ConvNetConfig
from .gpt import GPT, GPTConfig
from .lstm import LSTMLM, LSTMConfig
from .mlp import MLP, MLPConfig
from .resnet import ResNet, ResNetConfig

# name -> (model class, config class, task): "classify" models take images, "lm" models take token ids
MODELS = {
    "mlp": (MLP, MLPConfig, "classify"),
    "convnet": (ConvNet, ConvNetConfig, "classify"),
    "resnet": (ResNet, ResNetConfig, "classify"),
    "lstm": (LSTMLM, LSTMConfig, "lm"),
    "gpt": (GPT, GPTConfig, "lm"),
}


def config_class(name: str) -> type:
    """The config dataclass of model `name`."""
    return _lookup(name)[1]


def make_config(name: str, config=None):
    """A config for model `name` from None (defaults), a dict of field overrides, or a config instance."""
    cls = config_class(name)
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field {unknown[0]!r}; its fields are {sorted(fields)}")
        return cls(**config)
    raise TypeError(f"get_model({name!r}): config must be a {cls.__name__}, a dict or None, "
                    f"got {type(config).__name__}")


def get_model(name: str, config=None):
    """Build model `name` ('mlp', 'convnet', 'resnet', 'lstm', 'gpt') from a config, a dict of overrides
    of its config's fields, or None for the defaults."""
    return _lookup(name)[0](make_config(name, config))


def _lookup(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name]


__all__ = ["MODELS", "GPT", "GPTConfig", "LSTMLM", "LSTMConfig", "MLP", "MLPConfig", "ConvNet",
           "ConvNetConfig", "ResNet", "ResNetConfig", "get_model", "make_config", "config_class"]
