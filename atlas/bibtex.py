"""BibTeX of the method papers (seeds/) and of the atlas itself, keyed by citation key."""
from __future__ import annotations

from typing import Dict

BIBTEX: Dict[str, str] = {
    "fel2023maco": """@inproceedings{fel2023maco,
  title     = {Unlocking Feature Visualization for Deeper Networks with MAgnitude Constrained Optimization},
  author    = {Fel, Thomas and Boissin, Thibaut and Boutin, Victor and Picard, Agustin and Novello, Paul and
               Colin, Julien and Linsley, Drew and Rousseau, Tom and Cad{\\'e}ne, R{\\'e}mi and
               Goetschalckx, Lore and Gardes, Laurent and Serre, Thomas},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2023}
}""",
    "olah2017feature": """@article{olah2017feature,
  title   = {Feature Visualization},
  author  = {Olah, Chris and Mordvintsev, Alexander and Schubert, Ludwig},
  journal = {Distill},
  year    = {2017},
  doi     = {10.23915/distill.00007}
}""",
    "gorgun2025vital": """@misc{gorgun2025vital,
  title         = {VITAL: More Understandable Feature Visualization through Distribution Alignment and
                   Relevant Information Flow},
  author        = {Gorgun, Ada and Schiele, Bernt and Fischer, Jonas},
  year          = {2025},
  eprint        = {2503.22399},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}""",
    "yin2020dreaming": """@inproceedings{yin2020dreaming,
  title     = {Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion},
  author    = {Yin, Hongxu and Molchanov, Pavlo and Alvarez, Jose M. and Li, Zhizhong and Mallya, Arun and
               Hoiem, Derek and Jha, Niraj K. and Kautz, Jan},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2020}
}""",
    "ghiasi2022plug": """@inproceedings{ghiasi2022plug,
  title     = {Plug-In Inversion: Model-Agnostic Inversion for Vision with Data Augmentations},
  author    = {Ghiasi, Amin and Kazemi, Hamid and Reich, Steven and Zhu, Chen and Goldblum, Micah and
               Goldstein, Tom},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2022}
}""",
    "hamblin2024feature": """@misc{hamblin2024feature,
  title  = {Feature Accentuation: Revealing 'What' Features Respond to in Natural Images},
  author = {Hamblin, Chris and Fel, Thomas and Saha, Srijani and Konkle, Talia and Alvarez, George},
  year   = {2024},
  eprint = {2402.10039},
  archivePrefix = {arXiv}
}""",
    "shi2023attribution": """@article{shi2023attribution,
  title   = {Understanding contributing neurons via attribution visualization},
  author  = {Shi, Rui and Li, Tianxing and Yamaguchi, Yasushi},
  journal = {Neurocomputing},
  year    = {2023}
}""",
    "fel2023craft": """@inproceedings{fel2023craft,
  title     = {CRAFT: Concept Recursive Activation FacTorization for Explainability},
  author    = {Fel, Thomas and Picard, Agustin and Bethune, Louis and Boissin, Thibaut and Vigouroux, David
               and Colin, Julien and Cad{\\`e}ne, R{\\'e}mi and Serre, Thomas},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2023}
}""",
}

ATLAS_BIBTEX = """@misc{atlas2026,
  title  = {atlas: a precomputed feature-visualization atlas},
  author = {{atlas developers}},
  year   = {2026},
  note   = {Generated with atlas %(version)s, configuration %(config)s}
}"""


def bibtex(key: str) -> str:
    return BIBTEX.get(key, "")
