"""The in-process transformers engine: loading, batching, prefix sharing, the forward call."""

from evalkit.backends.hf.backend import HFBackend

__all__ = ["HFBackend"]
