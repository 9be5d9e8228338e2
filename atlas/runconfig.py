"""How an atlas is computed (not what it contains): GPU settings and the cluster it is submitted to.

Neither table changes a job's key: a job is the same job whether it runs on a laptop CPU in fp32 or on an
H100 with bf16 autocast (the device and precision are recorded in its metadata). Both are frozen
dataclasses read from the ``[compute]`` and ``[cluster]`` tables of a configuration file.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Optional

from .errors import AtlasError, unknown_choice

PRECISIONS = ("auto", "fp32", "bf16")
EXECUTORS = ("slurm", "local")


@dataclass(frozen=True)
class ComputeConfig:
    """Throughput settings of the optimisation loop (see :mod:`atlas.pipeline.compute`).

    precision:
        ``"auto"`` (bf16 autocast on a GPU that supports it, fp32 elsewhere), ``"fp32"`` or ``"bf16"``.
        bf16 keeps results within the tolerance stated in :mod:`atlas.pipeline.compute`.
    channels_last:
        run convolutional models in channels-last memory format (identical results up to float rounding).
    cudnn_benchmark:
        let cuDNN time its convolution algorithms for each new shape and keep the fastest.
    tf32:
        allow TensorFloat-32 matrix products and convolutions for the fp32 parts on Ampere and newer GPUs.
    """

    precision: str = "auto"
    channels_last: bool = True
    cudnn_benchmark: bool = True
    tf32: bool = True


@dataclass(frozen=True)
class ClusterConfig:
    """Resources of one shard when submitted with ``atlas submit`` (submitit; SLURM or local processes).

    shards:           number of array tasks (``atlas submit --shards`` overrides it).
    partition, account, qos, constraint: SLURM placement (empty: the cluster's default).
    gpus:             GPUs per shard (one shard uses one device; more GPUs means more shards).
    cpus:             CPU cores per shard (data loading, PNG encoding).
    mem_gb:           memory per shard.
    timeout_min:      wall-clock limit per shard; a shard that reaches it is checkpointed and requeued.
    array_parallelism: how many shards may run at the same time.
    max_requeues:     how often a pre-empted or timed-out shard is requeued before it gives up.
    folder:           where submitit keeps its logs and pickles (default ``<store>/submitit``).
    """

    shards: int = 8
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    gpus: int = 1
    cpus: int = 8
    mem_gb: int = 64
    timeout_min: int = 240
    array_parallelism: int = 64
    max_requeues: int = 10
    folder: Optional[str] = None


def _check(kind: str, value: Any, want: type, what: str) -> Any:
    if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
        raise AtlasError(f"config key {kind!r} must be {what}, got {value!r}")
    return value


def compute_from_mapping(base: ComputeConfig, raw: Mapping[str, Any]) -> ComputeConfig:
    """``[compute]`` table -> :class:`ComputeConfig` (unknown keys and bad values are one-line errors)."""
    names = {f.name for f in fields(ComputeConfig)}
    kw = {}
    for key, value in raw.items():
        if key not in names:
            raise unknown_choice("key in [compute]:", key, names)
        if key == "precision":
            if value not in PRECISIONS:
                raise unknown_choice("precision", value, PRECISIONS)
            kw[key] = value
        else:
            kw[key] = _check(f"compute.{key}", value, bool, "true or false")
    return replace(base, **kw)


def cluster_from_mapping(base: ClusterConfig, raw: Mapping[str, Any]) -> ClusterConfig:
    """``[cluster]`` table -> :class:`ClusterConfig` (unknown keys and bad values are one-line errors)."""
    kinds = {f.name: f.type for f in fields(ClusterConfig)}
    kw = {}
    for key, value in raw.items():
        if key not in kinds:
            raise unknown_choice("key in [cluster]:", key, kinds)
        if key in ("partition", "account", "qos", "constraint", "folder"):
            kw[key] = _check(f"cluster.{key}", value, str, "a string")
        else:
            _check(f"cluster.{key}", value, int, "a positive integer")
            if value < 1:
                raise AtlasError(f"config key 'cluster.{key}' must be a positive integer, got {value}")
            kw[key] = value
    return replace(base, **kw)
