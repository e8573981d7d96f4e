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

import dataclasses

import functools
import inspect
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from evalkit.backends.api import Backend, BackendStats
from evalkit.backends.hf.batching import plan_batches, run_batches
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
from evalkit.backends.hf.shared_generation import shared_batches
from evalkit.backends.hf.shared_scoring import score_shared
from evalkit.backends.hf.tokens import Encoder

log = logging.getLogger(__name__)

# Tokens per batch when batch_size=auto. On CPU throughput is flat beyond a few thousand
# tokens; on GPU we start high and halve on out-of-memory.
_AUTO_BUDGET = {"cpu": 2048, "cuda": 65536}


class HFBackend(Backend):
    """Causal LM from transformers (hub id, local folder, GGUF or the embedded model)."""

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
            raise ValueError(f"model.chat_template=true but {pretrained} has no chat template")
        cfg = self.model.config
        self.max_length = int(
            max_length or getattr(cfg, "max_position_embeddings", None) or self.tokenizer.model_max_length
        )
        self.batch_size = None if batch_size == "auto" else int(batch_size)
        self.max_batch_tokens = int(max_batch_tokens or _AUTO_BUDGET.get(self.device.type, 8192))
        if self.batch_size is not None and max_batch_tokens is None:
            self.max_batch_tokens = 1 << 62  # a fixed batch size means just that
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._logits_to_keep = "logits_to_keep" in params
        self.eos_ids = self._eos_ids()
        self.prefix_sharing = bool(prefix_sharing) and self._can_share_prefixes()
        # Packed rows use one custom mask for every layer, so sliding-window layers are
        # only exact while a sequence fits in the window.
        self._window = getattr(cfg, "sliding_window", None) if getattr(cfg, "use_sliding_window", True) else None

    def _can_share_prefixes(self) -> bool:
        """The fast path needs custom 4D attention masks (eager or SDPA attention)."""
        impl = getattr(self.model.config, "_attn_implementation", None)
        if impl not in ("sdpa", "eager") or self.model.get_output_embeddings() is None:
            log.warning("model.prefix_sharing needs eager or sdpa attention (got %s); using the straightforward path", impl)
            return False
        return True

    def fast_path_fits(self, n_tokens: int) -> bool:
        """Whether a sequence of ``n_tokens`` can take the prefix-sharing path exactly."""
        return n_tokens <= self.max_length and (not self._window or n_tokens <= int(self._window))

    # ----------------------------------------------------------------- metadata
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

    def token_count(self, text: str) -> int:
        return len(self.encoder.encode(text))

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for src in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif src:
                ids.update(int(x) for x in src)
        return ids

    def _on_oom(self) -> None:
        self.max_batch_tokens = max(1, self.max_batch_tokens // 2)
        if self.batch_size:
            self.batch_size = max(1, self.batch_size // 2)

    # ----------------------------------------------------------- log-likelihood
    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest]
    ) -> Iterator[tuple[int, LoglikelihoodResult]]:
        pairs = [self.encoder.encode_pair(r.context, r.continuation) for r in requests]
        if self.prefix_sharing:
            yield from score_shared(self, pairs)
        else:
            yield from self._score_pairs(pairs)

    def _score_pairs(self, pairs: list[tuple[list[int], list[int]]]) -> Iterator[tuple[int, LoglikelihoodResult]]:
        """Score token-level (context, continuation) pairs; yields per pair."""
        rows = []
        dropped = []  # tokens cut from the left of each pair, reported on its result
        for ctx, cont in pairs:
            whole = (ctx + cont)[-(self.max_length + 1) :]
            dropped.append(len(ctx) + len(cont) - len(whole))
            rows.append((whole[:-1], whole[len(whole) - len(cont) :]))
        lengths = [len(inp) for inp, _ in rows]
        batches = plan_batches(lengths, self.max_batch_tokens, self.batch_size)
        for batch, results in run_batches(batches, lambda b: self._forward_ll([rows[i] for i in b]), self._on_oom):
            for i, res in zip(batch, results):
                yield i, dataclasses.replace(res, truncated=dropped[i]) if dropped[i] else res

    def _forward_ll(self, rows: list[tuple[list[int], list[int]]]) -> list[LoglikelihoodResult]:
        import torch

        input_ids, attn, pos = self._left_pad([inp for inp, _ in rows])
        k = max(len(cont) for _, cont in rows)
        with torch.inference_mode():
            kwargs: dict[str, Any] = {"attention_mask": attn, "position_ids": pos, "use_cache": False}
            if self._logits_to_keep:
                kwargs["logits_to_keep"] = k
            logits = self.model(input_ids, **kwargs).logits[:, -k:, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
        self.stats.forward_calls += 1
        self.stats.forward_tokens += int(attn.sum())
        out = []
        for b, (_, cont) in enumerate(rows):
            c = len(cont)
            lp = logprobs[b, k - c :, :]
            target = torch.tensor(cont, device=lp.device)
            tok_lp = lp.gather(-1, target[:, None]).squeeze(-1)
            greedy = bool((lp.argmax(-1) == target).all())
            out.append(LoglikelihoodResult(float(tok_lp.sum()), greedy, c))
        return out

    def _left_pad(self, seqs: list[list[int]]):
        import torch

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            attn[i, width - len(s) :] = 1
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), attn.to(self.device), pos.to(self.device)

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
        for j, res in self._score_pairs(pairs):
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
        groups: Iterable[tuple[PrefixCache | None, list[list[int]]]]
        if self.prefix_sharing:
            groups = shared_batches(self, [sp.context_ids for sp in specs], [sp.max_new_tokens for sp in specs])
        else:
            # Budget covers the prompt plus the tokens still to come.
            lengths = [len(sp.context_ids) + sp.max_new_tokens for sp in specs]
            groups = [(None, plan_batches(lengths, self.max_batch_tokens, self.batch_size))]

        for prefix, batches in groups:
            run = functools.partial(self._generate_rows, specs, prefix)
            for batch, outs in run_batches(batches, run, self._on_oom):
                for j, (text, n) in zip(batch, outs):
                    i, s, _ = rows[j]
                    texts[i][s] = text
                    ntok[i][s] = n
                    self.stats.generated_tokens += n
                    if all(t is not None for t in texts[i]):
                        yield i, GenerateResult(tuple(texts[i]), tuple(ntok[i]), cut[i])  # type: ignore[arg-type]

    def _generate_rows(self, specs: list[GenerationSpec], prefix: PrefixCache | None, batch: list[int]):
        return generate_batch(self, [specs[j] for j in batch], prefix)
