"""Feature accentuation (Hamblin et al. 2024): the method (:mod:`.method`), its optimisation
(:mod:`.optimisation`) and the search for lambda in the model's sensitive region (:mod:`.lambda_search`)."""
from .method import VARIANTS, Accentuation, AccentuationConfig, calibrate_lambda

__all__ = ["VARIANTS", "Accentuation", "AccentuationConfig", "calibrate_lambda"]
