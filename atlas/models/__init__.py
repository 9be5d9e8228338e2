"""Models: one card per model (``card_for``), the zoo (``load_model``), the ``ModelHandle`` type and hooks."""
from .card import Block, ModelCard
from .cards import CARDS, card_for, known_card
from .handle import ModelHandle, as_channels
from .zoo import MODELS, check_model_name, load_model

__all__ = ["Block", "CARDS", "ModelCard", "ModelHandle", "MODELS", "as_channels", "card_for", "check_model_name",
           "known_card", "load_model"]
