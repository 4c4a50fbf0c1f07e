"""Every float tolerance of the suite, in one place. The policy: tests/README.md.

Exact equality (torch.equal, np.array_equal, ==) is only for results that are equal by
construction: the same inputs through the same code path in the same batch composition, in
the same process. Anything that reaches the same numbers another way (other batching,
chunking, memory format, a reference loop, another library) is compared here.

Why these numbers: float32 has eps = 1.19e-7. Another summation order (kernels with another
vector width such as AVX-512 or ATEN_CPU_CAPABILITY=default, another batch or chunk, another
memory format) moves a sum by a few eps times the size of its terms; a ResNet stacks enough
of them that 1.2e-6 relative was seen between two batchings (issue 16). 1e-5 leaves ~10x
margin over that; the bugs these tests look for (a wrong mask, class, pixel order or
normalisation) move values by 1e-3 or more.
"""
from __future__ import annotations

import numpy as np

# Probabilities, curve points and AUCs: all in [0, 1], so an absolute bound.
PROB_ATOL = 1e-5
# Maps (saliency, activations, images): relative ...
MAP_RTOL = 1e-5
# ... plus an absolute floor of MAP_RTOL times the map's largest magnitude: a value near 0 is a
# sum of terms as large as the map that cancel, so it carries their round-off, not a round-off
# relative to itself (RISE logit maps change sign; Abs-CAM has exact zeros next to peaks).
MAP_ATOL_SCALE = MAP_RTOL

# Golden reference (tests/data/golden/README.md): computed by other code on another machine.
GOLDEN_RTOL = 1e-4        # maps: of the array's scale; curves: per point
GOLDEN_CURVE_ATOL = 1e-6  # curve points near 0 (a probability's absolute round-off is ~eps)
GOLDEN_AUC_ATOL = 1e-5


def _array(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, on any device
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def assert_same_probs(actual, expected, err_msg: str = "") -> None:
    """Probabilities / curves / AUCs reached through another batching or code path."""
    np.testing.assert_allclose(_array(actual), _array(expected), rtol=0, atol=PROB_ATOL, err_msg=err_msg)


def assert_same_maps(actual, expected, err_msg: str = "") -> None:
    """Maps reached through another batching, chunking, memory format or code path."""
    expected = _array(expected)
    floor = MAP_ATOL_SCALE * float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(_array(actual), expected, rtol=MAP_RTOL, atol=floor, err_msg=err_msg)


def assert_golden_map(ours, reference, name: str) -> None:
    """Golden maps and logits: max error relative to the reference array's scale."""
    ours, reference = _array(ours), _array(reference)
    assert ours.shape == reference.shape, f"{name}: shape {ours.shape} vs {reference.shape}"
    error = np.abs(ours - reference).max() / np.abs(reference).max()
    assert error < GOLDEN_RTOL, f"{name}: relative error {error:.2e} (allowed {GOLDEN_RTOL:.0e})"


def assert_golden_curves(ours, reference) -> None:
    np.testing.assert_allclose(_array(ours), _array(reference), rtol=GOLDEN_RTOL, atol=GOLDEN_CURVE_ATOL)


def assert_golden_aucs(ours, reference) -> None:
    np.testing.assert_allclose(_array(ours), _array(reference), rtol=0, atol=GOLDEN_AUC_ATOL)
