"""BibTeX of the atlas itself and of CRAFT (the concepts' method); every visualisation method carries its own
paper's BibTeX (``Method.bibtex``)."""
from __future__ import annotations

CRAFT_BIBTEX = """@inproceedings{fel2023craft,
  title     = {CRAFT: Concept Recursive Activation FacTorization for Explainability},
  author    = {Fel, Thomas and Picard, Agustin and Bethune, Louis and Boissin, Thibaut and Vigouroux, David
               and Colin, Julien and Cad{\\`e}ne, R{\\'e}mi and Serre, Thomas},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023}
}"""

ATLAS_BIBTEX = """@misc{atlas2026,
  title  = {atlas: a precomputed feature-visualization atlas},
  author = {{atlas developers}},
  year   = {2026},
  note   = {Generated with atlas %(version)s, configuration %(config)s}
}"""
