"""evalkit: reproduce model-card benchmark tables (capability and safety) from one config."""

__version__ = "0.1.0"
