"""The optimisation core: parameterisations, transforms, objectives and the one loop."""
from .loop import NonFiniteLoss, OptimizerSpec, OptimResult, optimize
from .rng import TargetRNG

__all__ = ["NonFiniteLoss", "OptimizerSpec", "OptimResult", "TargetRNG", "optimize"]
