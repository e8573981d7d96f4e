"""Any Hugging Face sequence-classification model as a toxicity scorer.

For users with the hub or a local copy, e.g. ``tomh/toxigen_roberta`` (the ToxiGen
paper's RoBERTa, labels LABEL_0/LABEL_1) or ``s-nlp/roberta_toxicity_classifier``
(neutral/toxic). The toxic class is ``toxic_label`` (a label name or index); ``auto``
picks the one label whose name says toxic/hate/offensive (and not "non-"/"not "), else
index 1 of a two-label model. Single-label models are read through a softmax,
multi-label ones (``problem_type: multi_label_classification``) through a sigmoid.
The version recorded is the hub commit when known, else a sha256 of the weight files.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError
from evalkit.scorers.base import Scorer, ScorerError, scorer

_TOXIC_NAME = re.compile(r"toxic|hate|offensive|abusive|harmful", re.IGNORECASE)
_NEGATED = re.compile(r"^(non|not|no)[-_ ]?", re.IGNORECASE)


def toxic_index(id2label: dict[int, str], wanted: str | int = "auto") -> int:
    """Index of the toxic class in ``id2label``, per ``wanted`` (a name, an index or ``auto``)."""
    labels = {int(k): str(v) for k, v in id2label.items()}
    if isinstance(wanted, int) or (isinstance(wanted, str) and wanted.isdigit()):
        i = int(wanted)
        if i not in labels:
            raise ConfigError(f"scorer.toxic_label={wanted}: the model has labels {labels}")
        return i
    if wanted != "auto":
        for i, name in labels.items():
            if name.lower() == str(wanted).lower():
                return i
        raise ConfigError(f"scorer.toxic_label={wanted!r}: no such label; the model has {sorted(labels.values())}")
    hits = [i for i, name in labels.items() if _TOXIC_NAME.search(name) and not _NEGATED.match(name)]
    if len(hits) == 1:
        return hits[0]
    if len(labels) == 2:
        return 1
    raise ConfigError(f"scorer.toxic_label=auto cannot tell the toxic class among {sorted(labels.values())}; "
                      "set scorer.toxic_label to its name or index")


@scorer("hf_classifier")
class HFClassifier(Scorer):
    """Probability of the toxic class of a transformers sequence classifier."""

    def __init__(self, model: str | None = None, toxic_label: str | int = "auto", revision: str | None = None,
                 batch_size: int = 32, max_length: int = 512, device: str = "cpu",
                 trust_remote_code: bool = False) -> None:
        if not model:
            raise ConfigError("scorer.model is required for scorer=hf_classifier "
                              "(a hub id such as tomh/toxigen_roberta, or a local folder)")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_id, self.revision = str(model), revision
        self.batch_size, self.max_length, self.device = int(batch_size), int(max_length), torch.device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_id, revision=revision,
                                                           trust_remote_code=trust_remote_code)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                self.model_id, revision=revision, trust_remote_code=trust_remote_code).to(self.device).eval()
        except (OSError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ScorerError(f"scorer.model={self.model_id}: cannot load a sequence classifier ({first}); "
                              "give a local folder, or a hub id with network access") from None
        cfg = self.model.config
        self.label_index = toxic_index(cfg.id2label, toxic_label)
        self.label_name = cfg.id2label[self.label_index]
        self.multi_label = getattr(cfg, "problem_type", None) == "multi_label_classification"

    def settings(self) -> dict[str, Any]:
        return {"model": self.model_id, "toxic_label": self.label_name, "max_length": self.max_length,
                "activation": "sigmoid" if self.multi_label else "softmax"}

    def version(self) -> str:
        commit = getattr(self.model.config, "_commit_hash", None)
        if commit:
            return f"{self.model_id}@{commit}"
        return f"{self.model_id} sha256:{_weights_digest(Path(self.model_id))}"

    def score_batch(self, texts: list[str]) -> list[float]:
        import torch

        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        return probs[:, self.label_index].cpu().tolist()


def _weights_digest(folder: Path) -> str:
    files = sorted(p for p in folder.glob("*") if p.suffix in (".safetensors", ".bin", ".json") and p.is_file())
    if not files:
        return "unknown"
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
    return h.hexdigest()[:16]
