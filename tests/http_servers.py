"""Real servers for the HTTP-backend tests: ``transformers serve`` running the embedded
model, and a small fault-injecting proxy that sits in front of it. The benchmarks also
use llama-cpp-python's server (built from source, so never in CI).

The proxy forwards every request unchanged unless a fault is queued: answer with a
status (500, 429 with ``Retry-After``), stall, or drop the connection. It also keeps
the JSON bodies it forwarded, so tests can check what evalkit actually sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def embedded_model_folder() -> Path:
    """The embedded model as a plain HF folder (materialised once, shared with the HF backend)."""
    from evalkit.backends.hf.loading import _materialise_gguf, embedded_gguf_path, sha256_file

    gguf = embedded_gguf_path()
    return _materialise_gguf(gguf, sha256_file(gguf))


def serve_command() -> list[str] | None:
    """``transformers serve`` from this interpreter's environment, or None when it cannot serve."""
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:
        return None
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent))
    if not exe or not is_serve_available():
        return None
    return [exe, "serve"]


class ServerProcess:
    """An OpenAI-compatible server in its own process group on a free local port; restartable.

    Subclasses give the command line (``command``) and, if needed, the environment.
    """

    name = "server"

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout_s: float = 600) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                         start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"{self.name} did not come up in {timeout_s:.0f} s; see {self.log_path}")

    def kill(self) -> None:
        """Kill the server the hard way (what a crash or an OOM kill looks like to clients)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class TransformersServer(ServerProcess):
    """``transformers serve <embedded model>`` (float32, CPU)."""

    name = "transformers serve"

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        super().__init__(log_path, port)
        self.model = str(embedded_model_folder())

    def command(self) -> list[str]:
        return [*serve_command(), self.model, "--host", "127.0.0.1", "--port", str(self.port),  # type: ignore[misc]
                "--device", "cpu", "--dtype", "float32", "--log-level", "warning"]

    def env(self) -> dict[str, str]:
        return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


class LlamaCppServer(ServerProcess):
    """llama-cpp-python's OpenAI-compatible server running the embedded GGUF.

    ``python`` is an interpreter with ``llama-cpp-python[server]`` installed (a source
    build). ``logits_all`` keeps every prompt position's logits, which ``echo`` with
    ``logprobs`` needs (and which costs a full-vocabulary projection per prompt token, so
    generation-only runs leave it off). ``kv_overrides`` are GGUF metadata overrides
    (``key=type:value``). ``gguf`` replaces the embedded Q4_1 file (e.g. an F32 export of the
    same weights, to take quantised arithmetic out of a comparison).
    """

    name = "llama_cpp.server"

    def __init__(self, python: str, log_path: Path, *, logits_all: bool = False,
                 kv_overrides: tuple[str, ...] = (), threads: int = 2, gguf: str | None = None) -> None:
        from evalkit.backends.hf.loading import embedded_gguf_path

        super().__init__(log_path)
        self.python = python
        self.logits_all, self.kv_overrides, self.threads = logits_all, kv_overrides, threads
        self.model = gguf or str(embedded_gguf_path())

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "llama_cpp.server", "--model", self.model, "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", "2048", "--n_threads", str(self.threads),
               "--logits_all", str(self.logits_all).lower()]
        for kv in self.kv_overrides:
            cmd += ["--kv_overrides", kv]
        return cmd


@dataclass
class Fault:
    """``kind``: ``status`` (answer ``status`` with ``headers``), ``stall`` (wait ``seconds``,
    then forward), ``drop`` (close the connection without an answer)."""

    kind: str
    status: int = 500
    headers: dict[str, str] | None = None
    seconds: float = 0.0
    match: str | None = None  # only requests whose body contains this text; None: the next request
    forever: bool = False  # stays queued instead of being used up


class FaultProxy:
    """An HTTP proxy to ``upstream`` with queued faults, run in a background thread."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.faults: deque[Fault] = deque()
        self.bodies: list[dict] = []  # JSON bodies of the POSTs forwarded or faulted
        self.faults_served = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(30)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _take(self, body_text: str) -> Fault | None:
        for f in list(self.faults):
            if f.match is None or f.match in body_text:
                if not f.forever:
                    self.faults.remove(f)
                return f
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        text = body.decode("utf-8", "replace")
        if request.method == "POST" and text:
            self.bodies.append(json.loads(text))
        fault = self._take(text) if request.method == "POST" else None
        if fault is not None:
            self.faults_served += 1
            if fault.kind == "status":
                return web.Response(status=fault.status, headers=fault.headers or {}, text='{"error": "injected"}')
            if fault.kind == "drop":
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)  # never reaches the client
            await asyncio.sleep(fault.seconds)
        url = self.upstream + request.path_qs
        async with ClientSession(timeout=ClientTimeout(total=900)) as s:
            async with s.request(request.method, url, data=body or None,
                                 headers={"Content-Type": request.headers.get("Content-Type", "application/json")}) as r:
                payload = await r.read()
                headers = {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "server", "retry-after")}
                return web.Response(status=r.status, body=payload, headers=headers)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def _stop() -> None:
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
