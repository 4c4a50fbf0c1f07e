"""Deletion/insertion metrics reproduce the original RISE CausalMetric outputs (tests/data/golden)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency_bench import auc, causal_curves, gkern

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gkern_equals_golden(golden):
    kernel = gkern(11, 5)
    assert kernel.shape == (11, 11)
    np.testing.assert_allclose(kernel, golden["gkern_11_5"], rtol=1e-6, atol=0)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mode, explicit_step", [("deletion", False), ("insertion", True)])
def test_curves_and_auc_match_golden(golden, golden_model, mode, explicit_step):
    """Deletion runs with the default step (8 rows = the golden step), insertion with it given."""
    images = torch.from_numpy(golden["images"])
    assert int(golden["causal_step"]) == 8 * images.shape[3]
    step = int(golden["causal_step"]) if explicit_step else None
    curves = causal_curves(golden_model, images, golden["causal_saliency"], mode=mode, step=step)
    expected = golden[f"{mode}_curves"]
    assert curves.shape == expected.shape and curves.dtype == np.float64
    np.testing.assert_allclose(curves, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(auc(curves), golden[f"{mode}_auc"], rtol=0, atol=1e-5)


def test_auc_of_golden_curves(golden):
    for mode in ("deletion", "insertion"):
        np.testing.assert_allclose(auc(golden[f"{mode}_curves"]), golden[f"{mode}_auc"], rtol=0, atol=1e-12)
