"""Toxicity scorers: text in, probability of toxic/offensive text out, behind one interface.

Selected with the ``scorer`` config group (``scorer=profanity_check`` by default,
``scorer=hf_classifier``, ``scorer=perspective``); each records its name and version in
the results so a toxicity number always says which classifier produced it.
"""

from evalkit.scorers.base import SCORERS, Scorer, ScorerError, build_scorer, scorer

__all__ = ["SCORERS", "Scorer", "ScorerError", "build_scorer", "scorer"]
