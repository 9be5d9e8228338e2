"""Which device a run uses: ``--device`` / ``device = "..."`` checked against what this machine has.

``auto`` is the first CUDA device if there is one, else the CPU. Any other value must name a device type
atlas runs on (``cpu``, ``cuda``, ``cuda:N``, ``mps``) that this machine has, or the run stops with one
line before anything loads: ``cuda requested but no CUDA device is available; use --device cpu``.
Asking whether CUDA is available does not start it (torch asks the driver's management library).
"""
from __future__ import annotations

import re

import torch

from ..config.schema import DEVICE_PATTERN, DEVICE_WHAT
from ..errors import AtlasError


def _guess(spec: str) -> str:
    """The device a mistyped ``spec`` most likely meant (``gpu`` -> ``cuda``)."""
    s = spec.strip().lower()
    if s.startswith(("gpu", "nvidia", "cuda")):
        return "cuda" + (s[s.index(":"):] if ":" in s and s[s.index(":") + 1:].isdigit() else "")
    if s.startswith(("mac", "metal", "apple", "mps")):
        return "mps"
    return "cpu"


def parse_device(spec: str) -> str:
    """``spec`` normalised (lower case, no spaces), or a one-line error if it is not a device atlas runs on."""
    s = str(spec).strip().lower()
    if not re.fullmatch(DEVICE_PATTERN, s):
        raise AtlasError(f"unknown device {spec!r}: use {DEVICE_WHAT} (did you mean {_guess(str(spec))!r}?)")
    return s


def pick_device(spec: str = "auto") -> torch.device:
    """The ``torch.device`` for ``spec`` on this machine, or a one-line :class:`AtlasError` naming the
    fix if this machine does not have it (checked before any model or tensor is placed there)."""
    s = parse_device(spec)
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(s)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AtlasError(f"{s} requested but no CUDA device is available; use --device cpu "
                             "(or --device auto, which picks CUDA where there is one)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            have = ", ".join(f"cuda:{i}" for i in range(count))
            raise AtlasError(f"{s} requested but this machine has {count} CUDA device(s) ({have}); "
                             f"use --device cuda:0 or --device cpu")
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise AtlasError("mps requested but no Apple GPU (MPS) is available; use --device cpu")
    return device
