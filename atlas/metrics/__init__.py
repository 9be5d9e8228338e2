"""Metrics of a finished build: one pure function per metric (:mod:`.functions`), feature backbones,
suites that turn features into the papers' table cells, and the runner (``atlas metrics``)."""
from .runner import MetricsReport, MetricsRunner, check_metrics_config

__all__ = ["MetricsReport", "MetricsRunner", "check_metrics_config"]
