"""Choosing the device: one rule for the trainer, NAO, the digit classifier and the dish."""

from __future__ import annotations

import pytest
import torch

from evo_nas_common.devices import resolve_device
from surrogates.spd import default_predict_batch


def test_device_is_chosen_automatically() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="^device 'cuda:1' requested but CUDA is not avail"):
            resolve_device("cuda:1")


def test_a_name_that_is_not_a_device_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"^device 'abacus' is not a torch device \(e\.g\."):
        resolve_device("abacus")


def test_the_dish_predicts_in_larger_batches_on_a_gpu() -> None:
    # torch.device("cuda") names a device without needing one
    assert default_predict_batch(torch.device("cuda")) == 4096
    assert default_predict_batch(torch.device("cuda", 1)) == 4096
    assert default_predict_batch(torch.device("cpu")) == 32
    assert default_predict_batch(torch.device("cpu"), "mlp") == 512
