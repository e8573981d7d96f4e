"""Model backends: answer bulk requests; know nothing of tasks, metrics or reports."""

from evalkit.backends.api import Backend, BackendStats
from evalkit.backends.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
    RollingRequest,
    RollingResult,
)

__all__ = [
    "Backend",
    "BackendStats",
    "GenerateRequest",
    "GenerateResult",
    "LoglikelihoodRequest",
    "LoglikelihoodResult",
    "Request",
    "RollingRequest",
    "RollingResult",
]
