"""Synthetic water-flea micrographs with ground-truth evidence masks.

Each image shows one Daphnia-like animal in lateral view on a bright, unevenly lit
background with sensor noise and debris. Every animal carries small *stubs* of all four
features; the class is decided by exactly one full-size feature, whose pixels form the
evidence mask. "none" animals have only the stubs: trained towards a uniform target,
they stop the network from learning a class by elimination (see DEMO-NOTES).

Drawing is vectorised numpy in a small window around each shape. Each image draws from
its own generator, seeded by (seed, class index, image index), so the output does not
depend on how the work is split between processes.

The pixels do not depend on the CPU either: numpy's exp/sin/cos/power and BLAS pick
SIMD code paths at run time whose results differ in the last bit (enough to flip a
uint8 now and then), so the drawing uses only IEEE-exact array arithmetic (+ - * / sqrt,
min/max) and takes every transcendental from Python's `math` on scalars or short 1-D
vectors (see `exact_exp`, `_blur`).
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import correlate1d
from tqdm import tqdm

from ..errors import require
from .shapes import bezier, blob_coverage, ellipse_coverage, exact_exp, paint, stroke_coverage

CLASSES = ("antennule", "eggs", "eye", "spine")  # sorted: ImageFolder label order
NONE = "none"
NONE_INDEX = len(CLASSES)  # seed stream of the "none" animals
MAX_TILT_DEGREES = 30.0


@dataclass
class Sample:
    image: np.ndarray  # (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool: pixels of the class feature (empty for "none")
    background: np.ndarray  # (H, W, 3) uint8: the same scene without the animal
    class_name: str


# ---- the scene ------------------------------------------------------------------------

def render_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Bright-field background: tinted, unevenly lit (gradient, vignette, soft blotches)."""
    axis = np.arange(size, dtype=np.float32) / size
    ys, xs = np.meshgrid(axis, axis, indexing="ij")
    base = np.array([0.86, 0.87, 0.82], dtype=np.float32) + rng.uniform(-0.05, 0.04, 3).astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.03, 0.10) * ((xs - 0.5) * math.cos(direction) + (ys - 0.5) * math.sin(direction))
    cx, cy = rng.uniform(0.3, 0.7, 2)
    light -= rng.uniform(0.05, 0.15) * ((xs - cx) ** 2 + (ys - cy) ** 2)
    for _ in range(rng.integers(2, 5)):  # out-of-focus blotches
        bx, by, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
        # a separable Gaussian: two exp vectors of `size` values instead of a per-pixel exp
        along_x, along_y = (exact_exp(-((axis - centre) ** 2) / (2 * radius ** 2)) for centre in (bx, by))
        light += (rng.uniform(-0.05, 0.04) * np.outer(along_y, along_x)).astype(np.float32)
    return light[..., None] * base


def _debris(rng: np.random.Generator, canvas: np.ndarray, size: int, scale: float) -> None:
    """Small specks and faint fibres scattered over the slide."""
    for _ in range(rng.integers(3, 9)):
        x, y = rng.uniform(0, size, 2)
        r = rng.uniform(0.4, 1.2) * scale
        paint(canvas, ellipse_coverage(size, (x, y), (r, r * rng.uniform(0.6, 1)), rng.uniform(0, np.pi)),
              rng.uniform(0.35, 0.6, 3), rng.uniform(0.3, 0.7))
    for _ in range(rng.integers(0, 3)):
        start = rng.uniform(0, size, 2)
        bend = start + rng.normal(0, 8 * scale, 2)
        end = bend + rng.normal(0, 8 * scale, 2)
        paint(canvas, stroke_coverage(size, bezier(start, bend, end), 0.8 * scale), (0.55, 0.55, 0.5), 0.35)


@dataclass
class Pose:
    """Maps body coordinates (x: tail -> head, y: ventral -> dorsal, unit = carapace semi-length) to pixels."""
    unit: float
    angle: float
    mirror: float  # +1 or -1: dorsal side up or down
    origin: np.ndarray

    def __call__(self, points) -> np.ndarray:
        points = np.atleast_2d(np.asarray(points, dtype=np.float32)) * self.unit
        x, y = points[:, 0], points[:, 1] * self.mirror
        c, s = math.cos(self.angle), math.sin(self.angle)
        # image y grows downwards, so body "up" is -y
        return np.stack([x * c + y * s, x * s - y * c], axis=1) + self.origin

    def to_body(self, points) -> np.ndarray:
        """Inverse of the call: pixels to body coordinates."""
        d = np.atleast_2d(np.asarray(points, dtype=np.float32)) - self.origin
        c, s = math.cos(self.angle), math.sin(self.angle)
        x, y = d[:, 0] * c + d[:, 1] * s, d[:, 0] * s - d[:, 1] * c
        return np.stack([x, y * self.mirror], axis=1) / self.unit

    def place(self, centre, axes, tilt=0.0):
        """A body-frame ellipse as the (centre, axes, angle) of `blob_coverage`, in pixels."""
        return self(centre)[0], (axes[0] * self.unit, axes[1] * self.unit), self.angle - tilt * self.mirror

    def ellipse(self, size, centre, axes, tilt=0.0, ring=0.0):
        return blob_coverage(size, [self.place(centre, axes, tilt)], ring)

    def stroke(self, size, points, widths):
        return stroke_coverage(size, self(points), widths)


# Body-frame extent of the animal with every full feature (x_min, x_max, y_min, y_max).
BODY_EXTENT = (-1.75, 1.45, -0.85, 1.25)


def _random_pose(rng: np.random.Generator, size: int) -> Pose:
    """Lateral pose: head left or right, tilted by up to 30 degrees, placed fully inside the image."""
    unit = size * rng.uniform(0.17, 0.21)
    angle = (np.pi if rng.random() < 0.5 else 0.0) + np.deg2rad(rng.uniform(-MAX_TILT_DEGREES, MAX_TILT_DEGREES))
    pose = Pose(unit, angle, 1.0 if rng.random() < 0.5 else -1.0, np.zeros(2, dtype=np.float32))
    x0, x1, y0, y1 = BODY_EXTENT
    corners = pose([(x0, y0), (x0, y1), (x1, y0), (x1, y1)])
    margin = 3.0
    low = margin - corners.min(axis=0)
    high = size - margin - corners.max(axis=0)
    pose.origin = rng.uniform(low, np.maximum(high, low)).astype(np.float32)
    return pose


def _tint(rng: np.random.Generator) -> np.ndarray:
    """Carapace colour: amber, olive or pale brown, jittered."""
    palette = np.array([[0.78, 0.60, 0.32], [0.58, 0.66, 0.38], [0.70, 0.52, 0.44]], dtype=np.float32)
    return np.clip(palette[rng.integers(len(palette))] + rng.uniform(-0.06, 0.06, 3), 0, 1)


def _draw_body(rng, canvas, size, pose: Pose, tint, px: float) -> None:
    """Carapace, head, gut, legs and marginal setae: everything every animal has."""
    dark = tint * 0.45
    shell = [pose.place((0, 0), (1.0, 0.62)), pose.place((0.92, 0.14), (0.40, 0.36), tilt=0.3)]
    paint(canvas, blob_coverage(size, shell, rim_shading=0.5), tint, rng.uniform(0.5, 0.65))
    paint(canvas, blob_coverage(size, shell, ring=1.2 * px), dark, 0.8)
    # the fornix: a faint ridge where head shield meets carapace
    paint(canvas, pose.stroke(size, bezier((0.62, 0.5), (0.66, 0.2), (0.58, -0.1), 5), 0.8 * px), dark, 0.3)
    # oil droplets and a heart: pale, class-independent spots inside the body
    for _ in range(rng.integers(2, 5)):
        spot = (rng.uniform(-0.6, 0.5), rng.uniform(-0.3, 0.1))
        r = rng.uniform(0.04, 0.07)
        paint(canvas, pose.ellipse(size, spot, (r, r)), (0.95, 0.85, 0.55), 0.55)
    # rostrum: the beak under the head
    paint(canvas, pose.stroke(size, [(1.05, -0.12), (1.12, -0.32)], [1.6 * px, 0.8 * px]), dark, 0.6)
    # gut: a dark tube from the head to the rear, gently bent
    sway = rng.uniform(-0.08, 0.08)
    gut = np.concatenate([bezier((1.0, 0.05), (0.3, -0.05 + sway), (-0.45, 0.0), 6),
                          bezier((-0.45, 0.0), (-0.75, 0.02), (-0.88, 0.22), 4)[1:]])
    gut_colour = np.array([0.32, 0.38, 0.14], dtype=np.float32) + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    paint(canvas, pose.stroke(size, gut, 2.2 * px), gut_colour, 0.75)
    # thoracic legs: short strokes under the gut
    for x in np.linspace(0.45, -0.3, 5):
        paint(canvas, pose.stroke(size, [(x, -0.22), (x - 0.12, -0.5)], 0.9 * px), dark, 0.55)
    # setae along the ventral margin of the carapace
    for t in np.linspace(-0.5, 0.6, 6):
        base = np.array([t, -0.62 * np.sqrt(max(1 - t * t, 0))])
        paint(canvas, pose.stroke(size, [base, base + (-0.08, -0.12)], 0.7 * px), dark, 0.45)


def _draw_stubs(rng, canvas, size, pose: Pose, tint, px: float) -> None:
    """Small versions of all four features, present on every animal (and all a "none" has)."""
    dark = tint * 0.4
    paint(canvas, pose.stroke(size, [(0.95, 0.42), (0.9, 0.6)], [2.0 * px, 1.2 * px]), dark, 0.7)  # antennule stub
    paint(canvas, pose.stroke(size, [(-0.98, 0.12), (-1.12, 0.16)], [1.8 * px, 1.0 * px]), dark, 0.7)  # spine stub
    paint(canvas, pose.ellipse(size, (1.12, 0.16), (0.055, 0.055)), (0.12, 0.1, 0.08), 0.9)  # eye stub
    paint(canvas, pose.ellipse(size, (-0.15, 0.36), (0.42, 0.16), ring=0.8 * px), dark, 0.35)  # empty brood pouch


def _draw_feature(rng, canvas, mask, size, pose: Pose, tint, px: float, feature: str) -> None:
    """The one full-size feature that decides the class; its pixels go into `mask`."""
    dark = tint * 0.35
    if feature == "antennule":
        # long swimming antenna from the top of the head, curving up and back, with a forked tip
        lift = rng.uniform(0.85, 1.1)
        reach = rng.uniform(-0.05, 0.2)
        shaft = bezier((0.95, 0.42), (0.85, 0.55 + 0.45 * lift), (0.2 + reach, 0.65 + 0.45 * lift), 8)
        paint(canvas, pose.stroke(size, shaft, [3.0 * px] + [2.6 * px] * 7), dark, 0.9, mask)
        tip = shaft[-1]
        for bend in ((-0.35, 0.12), (-0.3, -0.1)):
            paint(canvas, pose.stroke(size, [tip, tip + bend], [2.2 * px, 2.0 * px]), dark, 0.85, mask)
    elif feature == "spine":
        # tail spine from the rear of the carapace, straight or slightly curved, tapering
        length = rng.uniform(0.55, 0.7)
        bend = rng.uniform(-0.05, 0.1)
        spine = bezier((-0.96, 0.12), (-0.96 - length / 2, 0.16 + bend), (-0.96 - length, 0.22 + bend), 5)
        paint(canvas, pose.stroke(size, spine, np.linspace(3.4 * px, 2.2 * px, 5)), dark, 0.9, mask)
    elif feature == "eye":
        # large dark compound eye with a pale rim, at the front of the head
        radius = rng.uniform(0.17, 0.2)
        paint(canvas, pose.ellipse(size, (1.08, 0.17), (radius, radius * 0.95)), (0.06, 0.05, 0.05), 0.95, mask)
        highlight = np.array([1.08 + radius * 0.3, 0.17 + radius * 0.3])
        paint(canvas, pose.ellipse(size, highlight, (radius * 0.22, radius * 0.22)), (0.45, 0.45, 0.42), 0.7)
    elif feature == "eggs":
        # 2-4 eggs in the brood pouch above the gut
        count = int(rng.integers(2, 5))
        xs = np.linspace(0.25, -0.55, count) if count > 2 else np.array([0.05, -0.35])
        egg_colour = np.array([0.38, 0.42, 0.16], dtype=np.float32) + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
        for x in xs:
            r = rng.uniform(0.14, 0.17)
            centre = (x + rng.uniform(-0.03, 0.03), 0.34 + rng.uniform(-0.03, 0.03))
            paint(canvas, pose.ellipse(size, centre, (r, r * 0.85), tilt=rng.uniform(-0.5, 0.5)), egg_colour, 0.9, mask)
            paint(canvas, pose.ellipse(size, centre, (r, r * 0.85), ring=0.8 * px), egg_colour * 0.6, 0.8)
    else:
        raise ValueError(f"unknown feature {feature!r}")


def _draw_distractors(rng, canvas, size, pose: Pose, px: float) -> None:
    """Class-independent look-alikes off the animal: a dark blob the size of an eye, an egg-like particle, a bristle."""
    x0, x1, y0, y1 = BODY_EXTENT
    eye = 0.18 * pose.unit  # the radius of a full-size eye

    def place():
        for _ in range(30):
            spot = rng.uniform(0.06 * size, 0.94 * size, 2)
            bx, by = pose.to_body(spot)[0]
            if not (x0 - 0.3 <= bx <= x1 + 0.3 and y0 - 0.3 <= by <= y1 + 0.3):
                return spot
        return None  # no free space: leave this distractor out

    if rng.random() < 0.5 and (spot := place()) is not None:
        r = eye * rng.uniform(0.8, 1.1)
        for dx, dy in rng.normal(0, r * 0.35, (3, 2)):
            paint(canvas, ellipse_coverage(size, (spot[0] + dx, spot[1] + dy), (r * 0.8, r * 0.7), rng.uniform(0, np.pi)),
                  (0.16, 0.14, 0.12), 0.85)
    if rng.random() < 0.5 and (spot := place()) is not None:
        r = 0.85 * eye * rng.uniform(0.9, 1.1)
        paint(canvas, ellipse_coverage(size, spot, (r, r * 0.85), rng.uniform(0, np.pi)), (0.42, 0.45, 0.2), 0.85)
        paint(canvas, ellipse_coverage(size, spot, (r, r * 0.85), 0, ring=0.8 * px), (0.25, 0.27, 0.12), 0.7)
    if rng.random() < 0.5 and (spot := place()) is not None:
        bend = spot + rng.normal(0, 0.08 * size, 2)
        end = bend + rng.normal(0, 0.08 * size, 2)
        paint(canvas, stroke_coverage(size, bezier(spot, bend, end), 1.2 * px), (0.3, 0.28, 0.22), 0.7)


def render_sample(seed: int, class_index: int, index: int, size: int = 112) -> Sample:
    """One image, its evidence mask and its background; `class_index` 0-3 or NONE_INDEX."""
    image, mask, background, name = render_linear(seed, class_index, index, size)
    return Sample(_quantise(image), mask, _quantise(background), name)


def render_linear(seed: int, class_index: int, index: int, size: int = 112):
    """`render_sample` before rounding to uint8: float32 image and background in [0, 1], mask, class name."""
    rng = np.random.default_rng([seed, class_index, index])
    feature = CLASSES[class_index] if class_index < len(CLASSES) else None
    px = size / 112  # widths are designed at 112 px and scale with the image
    background = render_background(rng, size)
    _debris(rng, background, size, px)
    canvas = background.copy()
    mask = np.zeros((size, size), dtype=bool)
    pose = _random_pose(rng, size)
    tint = _tint(rng)
    _draw_body(rng, canvas, size, pose, tint, px)
    _draw_stubs(rng, canvas, size, pose, tint, px)
    if feature is not None:
        _draw_feature(rng, canvas, mask, size, pose, tint, px, feature)
    _draw_distractors(rng, canvas, size, pose, px)
    # the same optics and sensor noise for the scene with and without the animal
    noise = rng.normal(0, 0.018, (size, size, 3)).astype(np.float32)
    return _finish(canvas, noise), mask, _finish(background, noise), feature or NONE


BLUR_SIGMA = 0.45  # px: slight optical softness


def _blur(canvas: np.ndarray) -> np.ndarray:
    """Gaussian blur of rows and columns (5 taps, edges reflected), weights from `math.exp`."""
    taps = np.arange(-2, 3, dtype=np.float64)
    weights = exact_exp(-taps * taps / (2 * BLUR_SIGMA ** 2))
    weights /= math.fsum(weights.tolist())  # not np.sum: its SIMD reduction order varies
    return correlate1d(correlate1d(canvas, weights, axis=0, mode="reflect"), weights, axis=1, mode="reflect")


def _finish(canvas: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.clip(_blur(canvas) + noise, 0, 1)


def _quantise(image: np.ndarray) -> np.ndarray:
    return (image * 255 + 0.5).astype(np.uint8)


# ---- the data set on disk -------------------------------------------------------------

MANIFEST = "demo.json"
GENERATOR_VERSION = 2  # 2: pixels independent of numpy's SIMD code paths


def image_name(class_name: str, index: int) -> str:
    return f"{class_name}-{index:04d}.png"


def sample_from_name(name: str) -> tuple[int, int]:
    """(class index, image index) of a file written by `write_demo_data`, e.g. 'eye-0012.png'."""
    class_name, index = Path(name).stem.rsplit("-", 1)
    return (CLASSES.index(class_name) if class_name in CLASSES else NONE_INDEX), int(index)


def _write_samples(root: str, seed: int, size: int, jobs: list[tuple[int, int]]) -> int:
    """Render and save a chunk of (class index, image index) pairs; runs in a worker process."""
    root_path = Path(root)
    for class_index, index in jobs:
        sample = render_sample(seed, class_index, index, size)
        name = image_name(sample.class_name, index)
        if class_index == NONE_INDEX:
            Image.fromarray(sample.image).save(root_path / NONE / name)
        else:
            Image.fromarray(sample.image).save(root_path / "images" / sample.class_name / name)
            Image.fromarray(sample.mask.astype(np.uint8) * 255).save(root_path / "evidence" / sample.class_name / name)
    return len(jobs)


def write_demo_data(out: str | os.PathLike, per_class: int = 160, none: int = 160, size: int = 112, seed: int = 0,
                    workers: int = 2) -> Path:
    """Write the demo data set: images/<class>/, evidence/<class>/ (masks), none/, and demo.json.

    The tree is built in a temporary folder next to `out` and renamed into place at the end,
    so a failure leaves no half-written data set.
    """
    require(per_class >= 1, f"--per-class must be at least 1, got {per_class}")
    require(none >= 0, f"--none must be 0 or more, got {none}")
    require(size >= 32, f"--size must be at least 32 px (features must stay 2-3 px wide), got {size}")
    require(workers >= 1, f"--workers must be at least 1, got {workers}")
    out = Path(out)
    if out.exists():
        require(out.is_dir() and (not any(out.iterdir()) or (out / MANIFEST).is_file()),
                f"{out} exists and is not a demo data set; choose a new --out folder or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for class_name in CLASSES:
            (tmp / "images" / class_name).mkdir(parents=True)
            (tmp / "evidence" / class_name).mkdir(parents=True)
        (tmp / NONE).mkdir()
        jobs = [(c, i) for c in range(len(CLASSES)) for i in range(per_class)] + [(NONE_INDEX, i) for i in range(none)]
        chunks = [jobs[start:start + 25] for start in range(0, len(jobs), 25)]
        with tqdm(total=len(jobs), desc="demo images", unit="img", file=sys.stderr, mininterval=2.0) as progress:
            if workers == 1:
                for chunk in chunks:
                    progress.update(_write_samples(str(tmp), seed, size, chunk))
            else:
                context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
                with ProcessPoolExecutor(workers, mp_context=context) as pool:
                    for done in as_completed([pool.submit(_write_samples, str(tmp), seed, size, c) for c in chunks]):
                        progress.update(done.result())
        manifest = {"generator": "saliency_bench.demo.synth", "version": GENERATOR_VERSION, "seed": seed, "size": size,
                    "per_class": per_class, "none": none, "classes": list(CLASSES)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    require(path.is_file(), f"{path} not found; {root} is not a demo data set (create one with `saliency-bench demo-data`)")
    return json.loads(path.read_text())
