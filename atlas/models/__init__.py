"""Models: the zoo (``load_model``), the ``ModelHandle`` type and hooks."""
from .handle import Block, ModelHandle, as_channels
from .zoo import MODELS, check_model_name, load_model

__all__ = ["Block", "ModelHandle", "MODELS", "as_channels", "check_model_name", "load_model"]
