"""Validation helpers shared by the model configs (frozen dataclasses checked on construction)."""

from __future__ import annotations

from collections.abc import Sequence


def check_int(cfg, field: str, low: int = 1) -> None:
    """Raise ValueError naming `Config.field` unless it is an int >= low."""
    v = getattr(cfg, field)
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ValueError(f"{type(cfg).__name__}.{field} must be an int >= {low}, got {v!r}")


def check_ints(cfg, field: str, low: int = 1, min_len: int = 1) -> None:
    """Raise ValueError unless `Config.field` is a tuple of at least `min_len` ints >= low."""
    v = getattr(cfg, field)
    if (not isinstance(v, Sequence) or isinstance(v, str) or len(v) < min_len
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= low for x in v)):
        raise ValueError(f"{type(cfg).__name__}.{field} must be a tuple of at least {min_len} ints >= {low}, "
                         f"got {v!r}")
    if not isinstance(v, tuple):
        object.__setattr__(cfg, field, tuple(v))  # keep frozen configs hashable


def check_prob(cfg, field: str) -> None:
    """Raise ValueError unless `Config.field` is a number in [0, 1)."""
    v = getattr(cfg, field)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise ValueError(f"{type(cfg).__name__}.{field} must be a probability in [0, 1), got {v!r}")


def check_bool(cfg, field: str) -> None:
    """Raise ValueError unless `Config.field` is a bool."""
    v = getattr(cfg, field)
    if not isinstance(v, bool):
        raise ValueError(f"{type(cfg).__name__}.{field} must be True or False, got {v!r}")
