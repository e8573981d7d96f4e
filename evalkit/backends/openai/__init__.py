"""A backend for models behind an OpenAI-compatible HTTP server (``model=openai_compatible``)."""
