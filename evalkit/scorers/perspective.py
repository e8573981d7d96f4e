"""Google's Perspective API as a toxicity scorer (the scorer behind most published
RealToxicityPrompts numbers; it takes no new users and is being shut down, hence not the default).

The key is read from an environment variable (``scorer.api_key_env``, default
``PERSPECTIVE_API_KEY``) at run time and never written anywhere: it travels in the
``X-Goog-Api-Key`` header (Google APIs' header form of the ``key`` system parameter), never
in the URL, and every message built from an answer passes through ``evalkit.secrets.redact``
(a server may echo the request). Requests are spaced to
``qps`` per second; 429 and 5xx answers are retried with exponential backoff (honouring
``Retry-After``); a bad key, a disabled API or an exhausted quota ends the run with one line.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from evalkit import secrets
from evalkit.errors import ConfigError
from evalkit.scorers.base import Scorer, ScorerError, scorer

DEFAULT_ENDPOINT = "https://commentanalyzer.googleapis.com/v1alpha1/comments:analyze"
_RETRY_STATUS = (429, 500, 502, 503, 504)
_MAX_CHARS = 20_000  # the API rejects comments over 20 KB


@scorer("perspective")
class Perspective(Scorer):
    """``attributeScores.<attribute>.summaryScore.value`` of the Comment Analyzer API."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, api_key_env: str = "PERSPECTIVE_API_KEY",
                 attribute: str = "TOXICITY", languages: list[str] | tuple[str, ...] = ("en",), qps: float = 1.0,
                 max_retries: int = 6, backoff_s: float = 1.0, max_backoff_s: float = 64.0, timeout_s: float = 30.0,
                 batch_size: int = 16) -> None:
        if float(qps) <= 0:
            raise ConfigError(f"scorer.qps must be positive (got {qps!r})")
        self.endpoint, self.api_key_env, self.attribute = endpoint, api_key_env, attribute
        self.languages = list(languages)
        self.min_interval = 1.0 / float(qps)
        self.max_retries, self.backoff_s, self.max_backoff_s = int(max_retries), float(backoff_s), float(max_backoff_s)
        self.timeout_s, self.batch_size = float(timeout_s), int(batch_size)
        self._last_request = 0.0
        self.retries = 0  # total retries, reported by the judge
        secrets.register(api_key_env)
        if not self._key():
            raise ScorerError(f"scorer=perspective: set {api_key_env} in the environment to your Perspective API key "
                              "(it is read from there and never written to disk)")

    def _key(self) -> str:
        return os.environ.get(self.api_key_env, "").strip()

    def settings(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "languages": self.languages, "endpoint": self.endpoint,
                "api_key_env": self.api_key_env}

    def version(self) -> str:
        # Perspective does not expose model versions; the date says when it was asked.
        return f"perspective {self.attribute} {self.endpoint.rsplit('/', 2)[-2]} (scored {time.strftime('%Y-%m-%d')})"

    def identity(self) -> dict[str, Any]:
        return {"name": self.kind, **self.settings()}

    def score_batch(self, texts: list[str]) -> list[float]:
        return [self.score_one(t) for t in texts]

    def score_one(self, text: str) -> float:
        """One comment's score, with rate limiting and retries."""
        payload = json.dumps({"comment": {"text": text[:_MAX_CHARS]}, "languages": self.languages,
                              "requestedAttributes": {self.attribute: {}}, "doNotStore": True}).encode()
        last = ""
        for attempt in range(self.max_retries + 1):
            status, body, retry_after = self._post(payload)
            if status == 200:
                return self._parse(body)
            last = secrets.redact(f"HTTP {status}: {_message(body)}" if status else body)
            if status in (401, 403):
                raise ScorerError(f"Perspective API rejected the key in ${self.api_key_env} ({last}); check the key "
                                  "and that the Comment Analyzer API is enabled for its Google Cloud project")
            if status and status not in _RETRY_STATUS:
                raise ScorerError(f"Perspective API refused a request ({last})")
            if attempt == self.max_retries:
                break
            self.retries += 1
            time.sleep(min(self.max_backoff_s, retry_after or self.backoff_s * 2**attempt))
        if last.startswith("HTTP 429"):
            raise ScorerError(f"Perspective API quota exhausted ({last}, after {self.max_retries} retries); "
                              "lower scorer.qps, wait for the quota to reset, or ask Google for more")
        raise ScorerError(f"Perspective API unavailable after {self.max_retries} retries ({last})")

    def _post(self, payload: bytes) -> tuple[int, str, float | None]:
        """(status, body, Retry-After seconds); status 0 for a network error (body = its text)."""
        wait = self._last_request + self.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_request = time.monotonic()
        headers = {"Content-Type": "application/json", "X-Goog-Api-Key": self._key()}
        req = urllib.request.Request(self.endpoint, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status, resp.read().decode("utf-8", "replace"), None
        except urllib.error.HTTPError as e:
            try:
                body = e.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                body = ""
            return e.code, body, _retry_after(e.headers.get("Retry-After"))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            # A refused or dropped connection, a timeout, or a reply that is not HTTP at all.
            reason = getattr(e, "reason", e)
            text = " ".join(secrets.redact(str(reason)).split())[:200]
            return 0, f"network error: {type(reason).__name__}: {text}", None

    def _parse(self, body: str) -> float:
        try:
            return float(json.loads(body)["attributeScores"][self.attribute]["summaryScore"]["value"])
        except (ValueError, KeyError, TypeError):
            # Redact before cutting: a cut can leave a prefix of the key that no longer matches.
            raise ScorerError(f"Perspective API answered without a {self.attribute} score: "
                              f"{secrets.redact(body)[:200]!r}") from None


def _message(body: str) -> str:
    """The error text of an answer, on one line (a server's page may be long and multi-line)."""
    try:
        text = str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        text = body
    return " ".join(secrets.redact(text).split())[:300]


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
