"""Answer extraction, normalisation and metrics (per-sample scores and their aggregates).

Every module of this package is imported here, so a metric, extractor or normaliser
registers itself just by living in a module of ``evalkit.metrics``.
"""

import importlib
import pkgutil

from evalkit.metrics.registry import METRICS, MetricResult, compute_metrics, metric

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["METRICS", "MetricResult", "compute_metrics", "metric"]
