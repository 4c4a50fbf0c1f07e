"""Does hiding a demo image's evidence with the deletion substrate hide it from the model?

The deletion test replaces the most salient pixels with the substrate (`metrics.deletion_substrate`,
zeros after normalisation: the data set's mean colour). A map that points at the class feature
should then drop p(class) fast. This script paints each image's evidence (widened by 2 px, as the
model card's occlusion check) three ways and prints the mean drop of p(class) per class:

- background: the slide as it was rendered without the animal (the model card's check);
- mean colour: the deletion substrate;
- blur: the insertion substrate (the image blurred with gkern(11, 5)), pasted into the region.

The images are fresh samples (seed 1 by default; the shipped model was trained on seed 0), drawn by
the demo's generator, on the shipped demo model at 112 px.

    python benchmarks/substrate_occlusion.py --per-class 16
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import binary_dilation

from saliency_bench import load_model, preprocess
from saliency_bench.demo import CLASSES, render_sample
from saliency_bench.demo.shipped import CHECKPOINT
from saliency_bench.metrics.causal import substrate_images

SIZE = 112
DILATE = 2  # px, as the model card's occlusion check


def class_probabilities(model: torch.nn.Module, images: torch.Tensor, classes: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(images).softmax(dim=1).gather(1, classes[:, None])[:, 0].numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=16, help="images per class (default 16)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed of the images (default 1: not trained on)")
    args = parser.parse_args()

    model = load_model("resnet18", num_classes=len(CLASSES), checkpoint=str(CHECKPOINT), input_size=(SIZE, SIZE))
    print(f"p(class) drop when each image's evidence (widened by {DILATE} px) is painted with ...; "
          f"{args.per_class} images per class, seed {args.seed}, shipped demo model, {SIZE} px")
    print("| class | p(class) | background | mean colour (deletion) | blur (insertion) |")
    print("|---|---:|---:|---:|---:|")
    for class_index, name in enumerate(CLASSES):
        samples = [render_sample(args.seed, class_index, index, SIZE) for index in range(args.per_class)]
        images = torch.stack([preprocess(Image.fromarray(s.image), (SIZE, SIZE)) for s in samples])
        backgrounds = torch.stack([preprocess(Image.fromarray(s.background), (SIZE, SIZE)) for s in samples])
        regions = torch.from_numpy(np.stack([binary_dilation(s.mask, iterations=DILATE) for s in samples]))[:, None]
        classes = torch.full((len(samples),), class_index)
        original = class_probabilities(model, images, classes)
        drops = []
        for fill in (backgrounds, substrate_images("zeros", images), substrate_images("blur", images)):
            painted = torch.where(regions, fill.expand_as(images), images)
            drops.append(original - class_probabilities(model, painted, classes))
        print(f"| {name} | {original.mean():.3f} | " + " | ".join(f"{drop.mean():.3f}" for drop in drops) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
