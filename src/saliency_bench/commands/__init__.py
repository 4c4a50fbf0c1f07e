"""Subcommands of the `saliency-bench` CLI, one module each (see cli.py)."""
