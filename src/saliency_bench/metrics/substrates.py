"""The substrates of deletion and insertion, once: what deleted pixels become and what insertion
starts from. Their names are the config's values (`metrics.deletion_substrate`,
`metrics.insertion_substrate`), the records' columns and the curves files' attrs; the tables and the
report describe them in words. Free of torch: the light stages read it. The images themselves are
`causal.substrate_images`."""
from __future__ import annotations

from ..errors import require

# name -> what a fully deleted image (or insertion's first image) is, as the tables say it
SUBSTRATE_DESCRIPTIONS = {
    "zeros": "the mean colour",  # 0 in the normalised tensor: preprocess.mean, the study's deletion
    "blur": "the blurred image",
    "mean": "the image's mean colour",
    "uniform noise": "uniform noise",
}
SUBSTRATES = tuple(SUBSTRATE_DESCRIPTIONS)
DEFAULT_SUBSTRATE = {"deletion": "zeros", "insertion": "blur"}


def canonical_substrate(name: str) -> str:
    """Substrate name as in SUBSTRATES ('uniform-noise' and 'uniform_noise' are accepted)."""
    canonical = str(name).strip().lower().replace("-", " ").replace("_", " ")
    require(canonical in SUBSTRATES, f"unknown substrate {name!r}; use one of: {', '.join(SUBSTRATES)}")
    return canonical


def describe_substrate(name: str) -> str:
    return SUBSTRATE_DESCRIPTIONS[canonical_substrate(name)]


def substrates_sentence(deletion: str, insertion: str) -> str:
    """One sentence for the tables: which substrates the AUCs were measured with, and the config keys."""
    return (f"Deletion replaces pixels with {describe_substrate(deletion)} (metrics.deletion_substrate: "
            f"{canonical_substrate(deletion)}), insertion starts from {describe_substrate(insertion)} "
            f"(metrics.insertion_substrate: {canonical_substrate(insertion)}).")
