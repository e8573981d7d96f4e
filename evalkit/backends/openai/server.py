"""What is known about the server: where it is, which model it serves, which version.

Recorded in ``results.json`` (``model.server``) so a run says exactly what answered it.
The base URL is recorded without credentials or query string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from evalkit.backends.openai.client import ApiClient, RequestFailed
from evalkit.errors import ConfigError, EvalkitError

# Headers that identify a server build (vLLM, TGI, OpenAI, llama.cpp...), plus the
# generic ``server`` header.
_VERSION_HEADER = re.compile(r"version|^server$|^x-powered-by$")


def public_url(base_url: str) -> str:
    """``base_url`` without user:password, query or fragment."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


@dataclass
class ServerInfo:
    base_url: str
    host: str
    served_model: str
    models_listed: list[str]
    version_headers: dict[str, str] = field(default_factory=dict)
    version: str | None = None  # from GET /version where the server has one (vLLM)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "host": self.host,
            "served_model": self.served_model,
            "models_listed": self.models_listed,
            "version_headers": self.version_headers,
            "version": self.version,
        }


async def discover(client: ApiClient, base_url: str, wanted: str | None) -> ServerInfo:
    """Ask ``/models`` which model is served; fail with one line when the server is not usable."""
    url = public_url(base_url)
    try:
        reply = await client.get("models", retries=2)
    except RequestFailed as e:
        raise EvalkitError(f"model.base_url={url}: {e} (is the server running? base_url usually ends in /v1)") from None
    ids = [str(m.get("id")) for m in reply.body.get("data") or [] if isinstance(m, dict) and m.get("id")]
    if wanted is None:
        if not ids:
            raise ConfigError(f"model.base_url={url}: /models lists no model; set model.served_model to the name the server expects")
        served = ids[0]
    else:
        if ids and wanted not in ids:
            raise ConfigError(f"model.served_model={wanted}: not served at {url}; it serves {', '.join(ids)}")
        served = wanted
    headers = {k: v for k, v in reply.headers.items() if _VERSION_HEADER.search(k)}
    version = None
    root = url[: -len("/v1")] if url.endswith("/v1") else url
    try:
        # A separate client call against the root: vLLM answers GET /version.
        probe = ApiClient(root, api_key=None, concurrency=1, timeout_s=5, retry=client.retry)
        try:
            v = await probe.get("version", retries=0)
            version = str(v.body.get("version")) if v.body.get("version") is not None else None
        finally:
            await probe.close()
    except RequestFailed:
        pass
    return ServerInfo(url, urlsplit(url).netloc, served, ids, headers, version)
