"""Asynchronous JSON client for an OpenAI-compatible server.

One aiohttp session, at most ``concurrency`` requests in flight, optional requests- and
tokens-per-minute limits, and retries with exponential backoff on 429, 5xx, timeouts
and dropped connections (a ``Retry-After`` header, when present, sets the wait). A
request that still fails raises ``RequestFailed``; the caller decides what that means
for the run. The API key is read from the environment once and only ever sent in the
``Authorization`` header: it never appears in a message, a log line or a file.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

# Worth retrying: the server is busy, restarting, or timed the request out.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class RequestFailed(Exception):
    """A request that failed for good (after its retries, or with a status not worth retrying)."""


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 1.0  # first wait; doubles each attempt (with jitter)
    max_backoff_s: float = 60.0  # cap on one wait, Retry-After included

    def wait(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        base = self.backoff_s * (2**attempt)
        return min(base * (0.5 + random.random() / 2), self.max_backoff_s)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RateLimiter:
    """Sliding one-minute window over request starts and (estimated) tokens."""

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._events: deque[tuple[float, int]] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        if not self.rpm and not self.tpm:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._events and now - self._events[0][0] >= 60.0:
                    self._events.popleft()
                n_req = len(self._events)
                n_tok = sum(t for _, t in self._events)
                ok_req = not self.rpm or n_req < self.rpm
                # A single request larger than the whole budget still goes, alone in its minute.
                ok_tok = not self.tpm or n_tok + tokens <= self.tpm or n_req == 0
                if ok_req and ok_tok:
                    self._events.append((now, tokens))
                    return
                await asyncio.sleep(max(0.01, 60.0 - (now - self._events[0][0])))


@dataclass
class Reply:
    body: dict[str, Any]
    headers: dict[str, str]


class ApiClient:
    """POST/GET JSON to ``base_url`` with bounded concurrency, rate limits and retries."""

    def __init__(self, base_url: str, *, api_key: str | None, concurrency: int, timeout_s: float,
                 retry: RetryPolicy, rpm: int | None = None, tpm: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry
        self._rpm, self._tpm = rpm, tpm
        self._session: aiohttp.ClientSession | None = None
        self._sem: asyncio.Semaphore | None = None
        self._limiter: RateLimiter | None = None
        self.retries = 0  # retried attempts, for results.json

    async def open(self) -> None:
        """Create the session (inside the event loop that will use it)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.concurrency),
            )
            self._sem = asyncio.Semaphore(self.concurrency)
            self._limiter = RateLimiter(self._rpm, self._tpm)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, *, retries: int | None = None) -> Reply:
        return await self._call("GET", path, None, 0, retries)

    async def post(self, path: str, payload: dict[str, Any], *, tokens: int = 0, retries: int | None = None) -> Reply:
        return await self._call("POST", path, payload, tokens, retries)

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None, tokens: int,
                    retries: int | None) -> Reply:
        await self.open()
        assert self._session is not None and self._sem is not None and self._limiter is not None
        url = f"{self.base_url}/{path.lstrip('/')}"
        max_retries = self.retry.max_retries if retries is None else retries
        attempt = 0
        while True:
            retry_after: float | None = None
            async with self._sem:
                await self._limiter.acquire(tokens)
                try:
                    async with self._session.request(method, url, json=payload) as resp:
                        text = await resp.text()
                        headers = {k.lower(): v for k, v in resp.headers.items()}
                        if resp.status < 300:
                            return Reply(_json(text, url), headers)
                        problem = f"HTTP {resp.status} from {url}: {_snippet(text)}"
                        if resp.status not in RETRY_STATUSES:
                            raise RequestFailed(problem)
                        retry_after = parse_retry_after(headers.get("retry-after"))
                except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
                    problem = f"{type(e).__name__} on {url}: {_snippet(str(e)) or 'connection failed'}"
                except asyncio.TimeoutError:
                    problem = f"no answer from {url} within {self.timeout_s:g} s"
            if attempt >= max_retries:
                raise RequestFailed(f"{problem} (after {attempt} retries)")
            wait = self.retry.wait(attempt, retry_after)
            attempt += 1
            self.retries += 1
            log.debug("retry %d in %.1f s: %s", attempt, wait, problem)
            await asyncio.sleep(wait)


def _json(text: str, url: str) -> dict[str, Any]:
    import json

    try:
        body = json.loads(text)
    except ValueError:
        raise RequestFailed(f"{url} answered with something that is not JSON: {_snippet(text)}") from None
    if not isinstance(body, dict):
        raise RequestFailed(f"{url} answered with JSON that is not an object: {_snippet(text)}")
    return body


def _snippet(text: str, n: int = 200) -> str:
    return " ".join(text.split())[:n]
