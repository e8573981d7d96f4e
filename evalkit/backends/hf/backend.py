"""Hugging Face transformers backend.

Two exact paths, chosen by ``model.prefix_sharing``:

* ``true`` (default): every shared token is computed once: the continuations of a
  context branch off one pass over it, and prefixes shared by many contexts (few-shot
  exemplars, chat headers) are found with a token trie, computed once and their key/value
  cache reused (``shared_scoring``; generation likewise, ``shared_generation``);
* ``false``: the straightforward path, every request computed in full, in length-sorted,
  left-padded batches; kept as the reference the fast path is tested against.

Two engineering choices make the straightforward path cheaper than the usual loop
without changing any number:

* left padding with explicit position ids puts every row's continuation at the end of the
  batch, so the vocabulary projection runs only on the last ``k`` positions
  (``logits_to_keep``) instead of the whole sequence (a fifth of a small model's FLOPs);
* generation drops each row from the batch as soon as it hits a stop string or EOS,
  instead of decoding padding until the longest row ends.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from evalkit.backends.api import Backend, BackendStats, Capabilities
from evalkit.backends.hf.engine import Engine
from evalkit.backends.hf.generation import GenerationSpec, generate_batch
from evalkit.backends.hf.loading import load_hf_model
from evalkit.backends.hf.prefix_cache import PrefixCache
from evalkit.backends.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
    request_key,
)
from evalkit.backends.hf.settings import check_model_config
from evalkit.backends.hf.continuous import generate_continuous, slot_capacity, slot_count
from evalkit.backends.hf.shared_generation import (decode_budget, fallback_batches, prefix_groups, shared_batches,
                                                   split_rows)
from evalkit.backends.hf.scoring import score_pairs
from evalkit.backends.hf.shared_scoring import score_shared
from evalkit.backends.hf.tokens import Encoder
from evalkit.errors import ConfigError

log = logging.getLogger(__name__)

class HFBackend(Backend):
    """Causal LM from transformers (hub id, local folder, GGUF or the embedded model)."""

    capabilities = Capabilities(loglikelihood=True, rolling=True, generate=True, chat=True, sampling=True)

    @classmethod
    def check_config(cls, model_cfg: dict[str, Any]) -> None:
        check_model_config(model_cfg)

    def __init__(
        self,
        pretrained: str,
        *,
        gguf_file: str | None = None,
        revision: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int | str = "auto",
        max_batch_tokens: int | None = None,
        max_length: int | None = None,
        add_bos: str | bool = "auto",
        chat_template: bool = False,
        trust_remote_code: bool = False,
        threads: int | None = None,
        name: str | None = None,
        prefix_sharing: bool = True,
        continuous_batching: bool = True,
        draft_tokens: int = 4,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        loaded = load_hf_model(
            pretrained,
            gguf_file=gguf_file,
            revision=revision,
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
        )
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.device = torch.device(device)
        self.name = name or pretrained
        self.source = loaded.source
        self.stats = BackendStats(load_seconds=loaded.load_seconds)
        self.encoder = Encoder.create(self.tokenizer, loaded.source.get("model_type"), add_bos)
        self.chat_template = bool(chat_template)
        if self.chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"model.chat_template=true but {pretrained} has no chat template; set model.chat_template=false")
        cfg = self.model.config
        window = int(max_length or getattr(cfg, "max_position_embeddings", None) or self.tokenizer.model_max_length)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.engine = Engine(self.model, torch.device(device), pad_id=pad_id, max_length=window,
                             eos_ids=self._eos_ids(), batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                             stats=self.stats)
        self.prefix_sharing = bool(prefix_sharing) and self._can_share_prefixes()
        self.continuous_batching = bool(continuous_batching)
        self.draft_tokens = int(draft_tokens)

    def _can_share_prefixes(self) -> bool:
        """The fast path needs custom 4D attention masks (eager or SDPA attention)."""
        impl = getattr(self.model.config, "_attn_implementation", None)
        if impl not in ("sdpa", "eager") or self.model.get_output_embeddings() is None:
            log.warning("model.prefix_sharing needs eager or sdpa attention (got %s); using the straightforward path", impl)
            return False
        return True

    # ----------------------------------------------------------------- metadata
    @property
    def max_length(self) -> int:
        """The context window (tokens); the engine owns it, so one setting governs every path."""
        return self.engine.max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        self.engine.max_length = int(value)

    def fingerprint(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            "backend": "hf",
            "name": self.name,
            **self.source,
            "add_bos": self.encoder.add_bos,
            "chat_template": self.chat_template,
            "max_length": self.max_length,
            "prefix_sharing": self.prefix_sharing,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for src in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif src:
                ids.update(int(x) for x in src)
        return ids

    # ----------------------------------------------------------- log-likelihood
    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest]
    ) -> Iterator[tuple[int, LoglikelihoodResult]]:
        pairs = [self.encoder.encode_pair(r.context, r.continuation) for r in requests]
        if self.prefix_sharing:
            yield from score_shared(self.engine, pairs)
        else:
            yield from score_pairs(self.engine, pairs)

    # --------------------------------------------------- rolling log-likelihood
    def loglikelihood_rolling(self, requests: Sequence[RollingRequest]) -> Iterator[tuple[int, RollingResult]]:
        pairs: list[tuple[list[int], list[int]]] = []
        owner: list[int] = []
        for i, req in enumerate(requests):
            tokens = self.encoder.encode(req.text, with_bos=False)
            windows = get_rolling_token_windows(
                token_list=tokens,
                prefix_token=self.encoder.prefix_token_id,
                max_seq_len=self.max_length,
                context_len=1,
            )
            for window in map(make_disjoint_window, windows):
                pairs.append((list(window[0]), list(window[1])))
                owner.append(i)
        remaining = [0] * len(requests)
        for o in owner:
            remaining[o] += 1
        for i, left in enumerate(remaining):
            if left == 0:  # an empty text has no window and log-probability 0
                yield i, RollingResult(0.0, 0)
        totals = [0.0] * len(requests)
        ntoks = [0] * len(requests)
        for j, res in score_pairs(self.engine, pairs):
            i = owner[j]
            totals[i] += res.logprob
            ntoks[i] += res.n_tokens
            remaining[i] -= 1
            if remaining[i] == 0:
                yield i, RollingResult(totals[i], ntoks[i])

    # --------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, GenerateResult]]:
        # Expand n samples into rows; a request is answered once all its rows finish.
        rows: list[tuple[int, int, list[int]]] = []
        cut = [0] * len(requests)  # context tokens dropped from the left, per request
        for i, req in enumerate(requests):
            ctx = self.encoder.encode(req.context)
            room = self.max_length - req.max_new_tokens
            if len(ctx) > room:
                self.stats.extra["truncated_contexts"] = self.stats.extra.get("truncated_contexts", 0) + 1
                cut[i] = len(ctx) - max(room, 1)
                ctx = ctx[-max(room, 1) :]
            for s in range(req.n):
                rows.append((i, s, ctx))
        texts: dict[int, list[str | None]] = {i: [None] * r.n for i, r in enumerate(requests)}
        ntok: dict[int, list[int]] = {i: [0] * r.n for i, r in enumerate(requests)}
        specs = []
        for i, s, ctx in rows:
            req = requests[i]
            seed = (int(request_key(req)[:15], 16) + 1_000_003 * s + req.seed) % (2**63)
            specs.append(GenerationSpec(ctx, req.stop, req.max_new_tokens, req.temperature, req.top_p, seed))
        for j, (text, n) in self._generate_rows(specs):
            i, s, _ = rows[j]
            texts[i][s] = text
            ntok[i][s] = n
            self.stats.generated_tokens += n
            if all(t is not None for t in texts[i]):
                yield i, GenerateResult(tuple(texts[i]), tuple(ntok[i]), cut[i])  # type: ignore[arg-type]

    def _generate_rows(self, specs: list[GenerationSpec]) -> Iterator[tuple[int, tuple[str, int]]]:
        """``(spec index, (text, tokens generated))`` of every spec, as each finishes."""
        contexts = [sp.context_ids for sp in specs]
        max_new = [sp.max_new_tokens for sp in specs]
        groups: Iterable[tuple[PrefixCache | None, list[list[int]]]]
        if self.prefix_sharing and self.continuous_batching:
            fits, rest = split_rows(self.engine, contexts, max_new)
            if rest:
                yield from self._run_batches(specs, [(None, fallback_batches(self.engine, contexts, max_new, rest))])
            if fits:
                shared, groups_of = prefix_groups(self.engine, contexts, fits)
                # A slot holds a row's own tokens (past its shared prefix) and what it generates.
                capacity = slot_capacity([len(contexts[j]) - shared[j] for j in fits], [max_new[j] for j in fits],
                                         self.draft_tokens)
                budget = decode_budget(self.engine)
                slots = slot_count(self.engine, capacity, len(fits), budget)
                yield from generate_continuous(self.engine, self.encoder, specs, groups_of, slots, capacity, budget,
                                               self.draft_tokens)
            return
        if self.prefix_sharing:
            groups = shared_batches(self.engine, contexts, max_new)
        else:
            groups = [(None, fallback_batches(self.engine, contexts, max_new, range(len(specs))))]
        yield from self._run_batches(specs, groups)

    def _run_batches(self, specs: list[GenerationSpec], groups: Iterable[tuple[PrefixCache | None, list[list[int]]]],
                     ) -> Iterator[tuple[int, tuple[str, int]]]:
        """The batch-at-a-time path (``generation.generate_batch``) over batches of spec indices."""
        for prefix, batches in groups:
            run = functools.partial(self._generate_batch, specs, prefix)
            for batch, outs in self.engine.run_batches(batches, run):
                yield from zip(batch, outs)

    def _generate_batch(self, specs: list[GenerationSpec], prefix: PrefixCache | None, batch: list[int]):
        return generate_batch(self.engine, self.encoder, [specs[j] for j in batch], prefix)
