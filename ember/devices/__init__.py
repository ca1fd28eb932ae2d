"""Devices own buffers: the only place (with the kernels in ops/) that touches raw arrays.

`ember.device("cpu")` names a device; `backend(device)` gives the object with its
array namespace (`xp`), used by op kernels. Only cpu (NumPy) exists so far.
"""

from __future__ import annotations

from ..errors import DeviceError
from .cpu import CPUBackend


class Device:
    """A device name with an optional index: `device("cpu")`, later `device("cuda:0")`."""

    __slots__ = ("type", "index")

    def __init__(self, type: str, index: int | None = None):
        self.type, self.index = type, index

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other) -> bool:
        other = device(other) if isinstance(other, str) else other
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))


_BACKENDS = {"cpu": CPUBackend()}
CPU = Device("cpu")


def device(spec) -> Device:
    """Parse 'cpu', 'cuda:1' or a Device into a Device; unknown types raise DeviceError."""
    if isinstance(spec, Device):
        return spec
    if spec is None:
        return CPU
    if not isinstance(spec, str):
        raise DeviceError(f"device: got {spec!r}, expected a string like 'cpu' or a Device")
    name, _, idx = spec.partition(":")
    if name not in ("cpu", "cuda", "opencl"):
        raise DeviceError(f"device: unknown device type {name!r}; expected 'cpu', 'cuda' or 'opencl'")
    if name == "cpu":
        return CPU
    return Device(name, int(idx) if idx else 0)


def backend(dev: Device):
    """The backend object of a device; raises DeviceError if it is not available here."""
    try:
        return _BACKENDS[dev.type]
    except KeyError:
        raise DeviceError(f"device {dev} is not available in this build; available: "
                          f"{sorted(_BACKENDS)}") from None


def available() -> list[str]:
    """Device types usable on this machine."""
    return sorted(_BACKENDS)
