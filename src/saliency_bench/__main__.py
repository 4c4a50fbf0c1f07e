"""`python -m saliency_bench`: the command line (`cli.main`), as the workflow's rules call it."""
import sys

from .cli import main

sys.exit(main())
