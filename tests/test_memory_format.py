"""Channels-last storage is a speed option only: golden results and the batching contract hold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency_bench import abscam_final, causal_curves, rise_saliency
from saliency_bench.errors import UserError
from saliency_bench.forward import ModelRunner, set_memory_format, uses_channels_last


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.fixture()
def channels_last_model(golden_model):
    return set_memory_format(golden_model, "channels_last")


def test_runner_follows_the_model_format(golden_model):
    assert not ModelRunner(golden_model).channels_last
    set_memory_format(golden_model, "channels_last")
    assert uses_channels_last(golden_model) and ModelRunner(golden_model).channels_last
    set_memory_format(golden_model, "contiguous")
    assert not uses_channels_last(golden_model)


def test_unknown_memory_format_is_a_clear_error(golden_model):
    with pytest.raises(UserError, match="channels_last"):
        set_memory_format(golden_model, "nhwc")


def test_golden_rise_and_abscam_final_hold_in_channels_last(channels_last_model, golden):
    images = torch.from_numpy(golden["images"])
    rise = rise_saliency(channels_last_model, images, torch.from_numpy(golden["rise_binary_masks"]), p=float(golden["rise_binary_p"]))
    assert relative_error(rise.numpy(), golden["rise_binary_saliency_logits"]) < 1e-4
    final = abscam_final(channels_last_model, images, "layer4")
    assert relative_error(final.numpy(), golden["abscam_final_layer4"]) < 1e-4


def test_golden_curves_hold_in_channels_last(channels_last_model, golden):
    images = torch.from_numpy(golden["images"])
    curves = causal_curves(channels_last_model, images, torch.from_numpy(golden["causal_saliency"]), mode="deletion",
                           step=int(golden["causal_step"]))
    assert relative_error(curves, golden["deletion_curves"]) < 1e-4
