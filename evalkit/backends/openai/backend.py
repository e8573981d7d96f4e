"""``model=openai_compatible``: a model behind an OpenAI-compatible server (vLLM, SGLang,
TGI, llama.cpp, transformers serve, hosted APIs).

* generation through ``/v1/completions`` (the prompt as text) or ``/v1/chat/completions``
  (the prompt as messages; few-shot exemplars as user/assistant turns when the runner
  renders them so). Temperature, top_p, seed and n are always sent, since servers
  otherwise fall back to the checkpoint's own sampling defaults; stop strings are sent
  and applied again here (servers differ on whether the stop string is returned).
* log-likelihood through ``/v1/completions`` with ``echo`` and ``logprobs`` (see
  ``logprobs.py``); a probe checks at start-up that the server really returns them.
* requests go out concurrently in prefix order (shared few-shot prefixes adjacent, for
  servers with prefix caching) and are yielded as they finish; a request that fails
  after its retries is logged and *not yielded*, so it is neither cached nor scored and
  the runner reports it (see ``evalkit.runner.run``); the same command retries it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from evalkit.backends.api import Backend, BackendStats
from evalkit.backends.openai import messages as chat
from evalkit.backends.openai.client import ApiClient, RequestFailed, RetryPolicy
from evalkit.backends.openai.logprobs import LogprobsMissing, check_probe, score_text_prompt, score_token_prompt
from evalkit.backends.openai.server import ServerInfo, discover
from evalkit.backends.openai.usage import Usage
from evalkit.backends.requests import (
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
    request_key,
)
from evalkit.errors import ConfigError, EvalkitError

log = logging.getLogger(__name__)
T = TypeVar("T")

APIS = ("completions", "chat")
MAX_STOP_SENT = 4  # the OpenAI API rejects more; the rest are applied client-side only
_PROBE_PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20"


class OpenAICompatibleBackend(Backend):
    """Answers requests by calling an OpenAI-compatible HTTP server."""

    @classmethod
    def check_config(cls, model_cfg: dict[str, Any]) -> None:
        check_config(model_cfg)

    def __init__(
        self,
        base_url: str,
        *,
        served_model: str | None = None,
        api: str = "completions",
        api_key_env: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        rpm: int | None = None,
        tpm: int | None = None,
        tokenizer: str | None = None,
        max_length: int | None = None,
        logprob_max_tokens: int = 1,
        price_input_per_mtok: float | None = None,
        price_output_per_mtok: float | None = None,
        chat_template: bool = False,
        name: str | None = None,
        **unused: Any,
    ) -> None:
        check_config({"base_url": base_url, "api": api, "concurrency": concurrency, "chat_template": chat_template,
                      "api_key_env": api_key_env, "logprob_max_tokens": logprob_max_tokens})
        key = None
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ConfigError(f"model.api_key_env={api_key_env}: that environment variable is not set")
        self.api = api
        self.chat_template = chat_template
        self.logprob_max_tokens = logprob_max_tokens
        self.name = name
        self.stats = BackendStats()
        self.usage = Usage(price_input_per_mtok, price_output_per_mtok)
        self.failures: list[str] = []
        self.client = ApiClient(base_url, api_key=key, concurrency=concurrency, timeout_s=timeout_s,
                                retry=RetryPolicy(max_retries, backoff_s, max_backoff_s), rpm=rpm, tpm=tpm)
        self.tokenizer_name = tokenizer
        self.encoder = _load_encoder(tokenizer) if tokenizer else None
        self.max_length = max_length or (_model_max_length(self.encoder) if self.encoder else None)
        self._loop = asyncio.new_event_loop()
        # The session is closed when the backend goes away (or at exit), not by the runner.
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self.client)
        self.server: ServerInfo = self._loop.run_until_complete(discover(self.client, base_url, served_model))
        self._probe_error: str | None | bool = False  # False: not probed yet
        log.info("server %s serves %s", self.server.host, self.server.served_model)

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> dict[str, Any]:
        return {
            "backend": "openai_compatible",
            "name": self.name or self.server.served_model,
            "api": self.api,
            "server": self.server.as_dict(),
            "tokenizer": self.tokenizer_name,
            "max_length": self.max_length,
            "chat_template": self.chat_template,
        }

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        if self.api == "chat":
            return chat.encode(messages)
        if self.encoder is None:
            raise ConfigError("model.chat_template=true with model.api=completions renders the template here: "
                              "set model.tokenizer to the model's tokenizer (or use model.api=chat)")
        return self.encoder.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def token_count(self, text: str) -> int:
        if self.encoder is not None:
            return len(self.encoder.encode(text, with_bos=False))
        return max(1, len(text) // 4)

    # ------------------------------------------------------------ capabilities
    def require(self, kinds: dict[str, list[str]]) -> None:
        """Fail before any work when the server cannot answer a request kind the suite needs.

        ``kinds`` maps a request kind to the tasks that need it.
        """
        scored = sorted({t for k in ("loglikelihood", "rolling") for t in kinds.get(k, [])})
        if not scored:
            return
        if kinds.get("rolling") and self.encoder is None:
            raise ConfigError(f"tasks {', '.join(sorted(set(kinds['rolling'])))} need rolling log-likelihood: "
                              "set model.tokenizer (hub id or folder) so texts can be split into windows")
        problem = self.probe_logprobs()
        if problem:
            raise EvalkitError(f"server {self.server.host} cannot score text ({problem}); tasks that need "
                               f"log-likelihood: {', '.join(scored)} (drop them from the suite or use a server "
                               "that returns prompt log-probs, e.g. vLLM or llama-cpp-python with logits_all)")

    def probe_logprobs(self) -> str | None:
        """None when the server returns prompt log-probabilities with ``echo``, else why not."""
        if self._probe_error is False:
            payload = self._logprob_payload(_PROBE_PROMPT)
            try:
                reply = self._loop.run_until_complete(self.client.post("completions", payload, retries=2))
                choices = reply.body.get("choices") or [{}]
                self._probe_error = check_probe(choices[0], _PROBE_PROMPT)
            except RequestFailed as e:
                self._probe_error = str(e)
        return self._probe_error  # type: ignore[return-value]

    # -------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, GenerateResult]]:
        order = sorted(range(len(requests)), key=lambda i: requests[i].context)
        yield from self._drive([(i, lambda r=requests[i]: self._generate_one(r)) for i in order])

    async def _generate_one(self, req: GenerateRequest) -> GenerateResult:
        texts: list[str] = []
        tokens: list[int] = []
        while len(texts) < req.n:
            # Servers that ignore ``n`` return one choice: ask again for the rest, each
            # with its own seed so the samples differ.
            want = req.n - len(texts)
            payload = self._generation_payload(req, want, _seed(req, len(texts)))
            path = "chat/completions" if self.api == "chat" else "completions"
            reply = await self.client.post(path, payload, tokens=self._estimate(req.context, req.max_new_tokens * want))
            self.usage.add(reply.body.get("usage"))
            choices = sorted(reply.body.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise RequestFailed(f"{path}: the answer has no choices")
            for c in choices[:want]:
                text = (c.get("message") or {}).get("content") if self.api == "chat" else c.get("text")
                text = _cut_at_stop(text or "", req.stop)
                texts.append(text)
                tokens.append(self._completion_tokens(text, reply.body.get("usage"), len(choices)))
        return GenerateResult(tuple(texts), tuple(tokens))

    def _generation_payload(self, req: GenerateRequest, n: int, seed: int) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.server.served_model,
            "max_tokens": self._max_tokens(req),
            "temperature": req.temperature,
            "top_p": req.top_p,
            "seed": seed,
            "n": n,
        }
        if req.stop:
            payload["stop"] = list(req.stop[:MAX_STOP_SENT])
        if self.api == "chat":
            payload["messages"] = chat.as_messages(req.context)
        else:
            payload["prompt"] = req.context
        return payload

    def _max_tokens(self, req: GenerateRequest) -> int:
        if self.encoder is None or not self.max_length or chat.decode(req.context) is not None:
            return req.max_new_tokens
        room = self.max_length - self.token_count(req.context)
        if room < 1:
            raise RequestFailed(f"the prompt is longer than model.max_length={self.max_length} tokens")
        return min(req.max_new_tokens, room)

    def _completion_tokens(self, text: str, usage: dict[str, Any] | None, n_choices: int) -> int:
        if self.encoder is not None:
            return self.token_count(text)
        done = (usage or {}).get("completion_tokens")
        return int(done) // max(1, n_choices) if isinstance(done, int) else self.token_count(text)

    # ---------------------------------------------------------- log-likelihood
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> Iterator[tuple[int, LoglikelihoodResult]]:
        order = sorted(range(len(requests)), key=lambda i: (requests[i].context, requests[i].continuation))
        yield from self._drive([(i, lambda r=requests[i]: self._loglikelihood_one(r)) for i in order])

    async def _loglikelihood_one(self, req: LoglikelihoodRequest) -> LoglikelihoodResult:
        context = self._as_text(req.context)
        if self.encoder is not None:
            ctx_ids, cont_ids = self.encoder.encode_pair(context, req.continuation)
            prompt: Any = ctx_ids + cont_ids
            choice = await self._echo(prompt, len(prompt))
            s = score_token_prompt(choice, len(prompt), len(cont_ids))
        else:
            prompt = context + req.continuation
            choice = await self._echo(prompt, self._estimate(prompt, 0))
            s = score_text_prompt(choice, context, req.continuation)
            if s.merged:
                self.stats.extra["boundary_merges"] = self.stats.extra.get("boundary_merges", 0) + 1
        return LoglikelihoodResult(s.logprob, s.is_greedy, s.n_tokens)

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest]) -> Iterator[tuple[int, RollingResult]]:
        yield from self._drive([(i, lambda r=requests[i]: self._rolling_one(r)) for i in range(len(requests))])

    async def _rolling_one(self, req: RollingRequest) -> RollingResult:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        assert self.encoder is not None  # require() insists on a tokenizer for rolling requests
        tokens = self.encoder.encode(req.text, with_bos=False)
        windows = get_rolling_token_windows(token_list=tokens, prefix_token=self.encoder.prefix_token_id,
                                            max_seq_len=self.max_length or 2048, context_len=1)
        total, n = 0.0, 0
        for ctx, pred in map(make_disjoint_window, windows):
            prompt = list(ctx) + list(pred)
            s = score_token_prompt(await self._echo(prompt, len(prompt)), len(prompt), len(pred))
            total, n = total + s.logprob, n + s.n_tokens
        return RollingResult(total, n)

    async def _echo(self, prompt: Any, est_tokens: int) -> dict[str, Any]:
        reply = await self.client.post("completions", self._logprob_payload(prompt), tokens=est_tokens)
        self.usage.add(reply.body.get("usage"))
        choices = reply.body.get("choices") or []
        if not choices:
            raise RequestFailed("completions: the answer has no choices")
        return choices[0]

    def _logprob_payload(self, prompt: Any) -> dict[str, Any]:
        return {"model": self.server.served_model, "prompt": prompt, "echo": True, "logprobs": 1,
                "max_tokens": self.logprob_max_tokens, "temperature": 0.0, "top_p": 1.0, "seed": 0, "n": 1}

    def _as_text(self, context: str) -> str:
        msgs = chat.decode(context)
        if msgs is None:
            return context
        if self.encoder is None:
            raise ConfigError("log-likelihood with model.api=chat needs the chat template rendered here: "
                              "set model.tokenizer (or run multiple-choice tasks with model.chat_template=false)")
        return self.encoder.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    def _estimate(self, text: str, out_tokens: int) -> int:
        return len(text) // 4 + out_tokens

    # ---------------------------------------------------------------- driving
    def _drive(self, jobs: list[tuple[int, Callable[[], Awaitable[T]]]]) -> Iterator[tuple[int, T]]:
        """Run every job concurrently (the client bounds how many are in flight) and
        yield ``(i, result)`` as each finishes; failed jobs are logged and skipped."""
        loop = self._loop

        async def one(i: int, make: Callable[[], Awaitable[T]]) -> tuple[int, T | None, str | None]:
            try:
                return i, await make(), None
            except (RequestFailed, LogprobsMissing) as e:
                return i, None, str(e)

        tasks = {loop.create_task(one(i, make)) for i, make in jobs}
        try:
            while tasks:
                done, tasks = loop.run_until_complete(asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))
                for t in done:
                    i, result, error = t.result()
                    if error is not None:
                        self._failed(error)
                    else:
                        self._account()
                        yield i, result  # type: ignore[misc]
        finally:
            for t in tasks:
                t.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def _failed(self, error: str) -> None:
        self.failures.append(error)
        if len(self.failures) <= 5:
            log.warning("request failed: %s", error)
        elif len(self.failures) == 6:
            log.warning("more requests failed; only the first 5 are shown")
        self.stats.extra["failed_requests"] = len(self.failures)

    def _account(self) -> None:
        self.stats.forward_calls += 1
        self.stats.forward_tokens = self.usage.prompt_tokens
        self.stats.generated_tokens = self.usage.completion_tokens
        self.stats.extra.update(self.usage.as_dict(), http_retries=self.client.retries)

    def close(self) -> None:
        self._finalizer()


def _shutdown(loop: asyncio.AbstractEventLoop, client: ApiClient) -> None:
    if not loop.is_closed():
        loop.run_until_complete(client.close())
        loop.close()


def check_config(m: dict[str, Any]) -> None:
    """One-line errors for the keys this backend reads (called through the registry before any work)."""
    if not str(m.get("base_url") or "").startswith(("http://", "https://")):
        raise ConfigError(f"model.base_url must be an http(s) URL such as http://127.0.0.1:8000/v1 (got {m.get('base_url')!r})")
    if m.get("api") not in APIS:
        raise ConfigError(f"model.api must be one of {', '.join(APIS)} (got {m.get('api')!r})")
    c = m.get("concurrency")
    if not isinstance(c, int) or isinstance(c, bool) or c < 1:
        raise ConfigError(f"model.concurrency must be a positive integer (got {c!r})")
    if m.get("api") == "chat" and not m.get("chat_template"):
        raise ConfigError("model.api=chat sends the prompt as chat messages: add model.chat_template=true")
    env = m.get("api_key_env")
    if env is not None and (not isinstance(env, str) or not env.replace("_", "").isalnum()):
        raise ConfigError(f"model.api_key_env is the NAME of the environment variable holding the key, e.g. OPENAI_API_KEY (got a value that is not a name)")
    if m.get("logprob_max_tokens", 1) not in (0, 1):
        raise ConfigError(f"model.logprob_max_tokens must be 0 or 1 (got {m.get('logprob_max_tokens')!r})")


def _seed(req: GenerateRequest, k: int) -> int:
    """A seed per request (and per extra call for servers that ignore ``n``), stable across runs."""
    if req.temperature == 0 and k == 0:
        return req.seed
    h = hashlib.sha256(f"{request_key(req)}:{k}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    hits = [i for s in stops if s and (i := text.find(s)) != -1]
    return text[: min(hits)] if hits else text


def _load_encoder(spec: str) -> Any:
    from transformers import AutoTokenizer

    from evalkit.backends.hf.tokens import Encoder

    path = spec
    if spec.startswith("embedded:"):
        from evalkit.backends.hf.loading import EMBEDDED_SMOLLM2, _materialise_gguf, embedded_gguf_path, sha256_file

        if spec != EMBEDDED_SMOLLM2:
            raise ConfigError(f"model.tokenizer={spec}: the only embedded model is {EMBEDDED_SMOLLM2}")
        gguf = embedded_gguf_path()
        path = str(_materialise_gguf(gguf, sha256_file(gguf)))
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise ConfigError(f"model.tokenizer={spec}: {str(e).splitlines()[0]} (give a local folder or a hub id)") from None
    return Encoder.create(tok, None, "auto")


def _model_max_length(encoder: Any) -> int | None:
    n = getattr(encoder.tokenizer, "model_max_length", None)
    return int(n) if isinstance(n, int) and 0 < n < 10**7 else None
