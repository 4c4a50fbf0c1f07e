"""Deletion/insertion metrics reproduce the original RISE CausalMetric outputs (tests/data/golden)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency_bench import auc, causal_curves, gkern
from tolerances import GOLDEN_RTOL, assert_golden_aucs, assert_golden_curves

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gkern_equals_golden(golden):
    kernel = gkern(11, 5)
    assert kernel.shape == (11, 11)
    np.testing.assert_allclose(kernel, golden["gkern_11_5"], rtol=GOLDEN_RTOL, atol=0)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)  # 121 float32 values (eps 1.2e-7) summed


@pytest.mark.parametrize("mode, explicit_step", [("deletion", False), ("insertion", True)])
def test_curves_and_auc_match_golden(golden, golden_model, mode, explicit_step):
    """Deletion runs with the default step (8 rows = the golden step), insertion with it given."""
    images = torch.from_numpy(golden["images"])
    assert int(golden["causal_step"]) == 8 * images.shape[3]
    step = int(golden["causal_step"]) if explicit_step else None
    curves = causal_curves(golden_model, images, golden["causal_saliency"], mode=mode, step=step)
    expected = golden[f"{mode}_curves"]
    assert curves.shape == expected.shape and curves.dtype == np.float64
    assert_golden_curves(curves, expected)
    assert_golden_aucs(auc(curves), golden[f"{mode}_auc"])


def test_auc_of_golden_curves(golden):
    # the golden curves themselves, through numpy in float64 (no torch kernels): float64 round-off
    for mode in ("deletion", "insertion"):
        np.testing.assert_allclose(auc(golden[f"{mode}_curves"]), golden[f"{mode}_auc"], rtol=0, atol=1e-12)
