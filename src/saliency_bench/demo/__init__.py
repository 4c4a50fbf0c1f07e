"""The offline demo: synthetic water-flea micrographs with evidence masks, and a demo model.

- `write_demo_data` / `render_sample` (synth.py): the images, their ground-truth masks, the "none" animals.
- `train_demo_model` (train.py): ResNet-18 from scratch on the CPU, validated on the workflow's split.
- `occlusion_check` (train.py): does the trained model use the evidence? (feature vs moved control)
- shipped.py: the demo model that ships in weights/ (fp16, sha256-checked), used unless demo.train is true;
  card.py makes it and its model card from a `train-demo` checkpoint.
"""
from __future__ import annotations

# train.py is imported from itself where it is used: the data's job and the Snakefile's parse need
# the names above only, and so the model code (torch, runtime/) is no part of their code fingerprint.
from .synth import CLASSES, NONE, Sample, read_manifest, render_sample, write_demo_data

__all__ = ["CLASSES", "NONE", "Sample", "read_manifest", "render_sample", "write_demo_data"]
