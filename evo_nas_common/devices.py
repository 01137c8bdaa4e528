"""Choosing the torch device a surrogate or trainer computes on."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device, refused with a
    one-line error when it is not a device or CUDA is asked for where there is none."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device '{device}' is not a torch device (e.g. cpu, cuda, cuda:1)"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available")
    return dev
