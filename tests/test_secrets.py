"""Secrets never reach output: the Perspective key travels in a header, and every answer a
server sends back (echoes, 400s, HTML, a dropped connection, a reply that is not HTTP)
ends in one line without it, through the scorer and through a whole CLI run."""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from evalkit import secrets
from evalkit.scorers.base import ScorerError
from evalkit.scorers.perspective import Perspective

KEY = "AIzaTESTsecret-0123456789abcdef"


class _Handler(http.server.BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Handler.seen.append({"path": self.path, "headers": dict(self.headers)})
        echo = f"{self.command} {self.path}\n{self.headers}\n{body.decode()}"
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "not_http":
            self.wfile.write(f"SSH-2.0-nope {echo}\r\n".encode())
            return
        status, ctype, payload = {
            "echo400": (400, "application/json", json.dumps({"error": {"message": echo}})),
            "html": (200, "text/html", f"<html><body><pre>{echo}</pre></body></html>"),
            "ok": (200, "application/json", json.dumps({"attributeScores": {"TOXICITY": {"summaryScore": {"value": 0.25}}}})),
        }[mode]
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.mode = "ok"  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Handler.seen.clear()
    yield srv
    srv.shutdown()
    srv.server_close()


def _endpoint(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/v1alpha1/comments:analyze"


def _scorer(srv, monkeypatch) -> Perspective:
    monkeypatch.setenv("PERSPECTIVE_API_KEY", KEY)
    return Perspective(endpoint=_endpoint(srv), max_retries=1, backoff_s=0.0, timeout_s=10)


def test_key_goes_in_the_header_never_the_url(server, monkeypatch):
    assert _scorer(server, monkeypatch).score_one("hello") == 0.25
    (req,) = _Handler.seen
    assert KEY not in req["path"] and req["headers"]["X-Goog-Api-Key"] == KEY


@pytest.mark.parametrize("mode", ["echo400", "html", "close", "not_http"])
def test_bad_answers_end_in_one_line_without_the_key(server, monkeypatch, mode):
    server.mode = mode
    with pytest.raises(ScorerError) as e:
        _scorer(server, monkeypatch).score_one("hello")
    msg = str(e.value)
    assert KEY[:5] not in msg and "\n" not in msg.strip(), msg  # not even a prefix cut off by a length limit
    if mode in ("echo400", "html"):  # the server did echo the key back: redaction took it out
        assert "***PE" in msg


def test_redaction_covers_config_named_variables_and_log_records(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-123456789")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcdef123456")
    secrets.register_from_config({"model": {"api_key_env": "MY_SERVICE_TOKEN"}})
    assert secrets.redact("a tok-123456789 b sk-abcdef123456") == "a ***MY_SERVICE_TOKEN b ***OPENAI_API_KEY"
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    log = logging.getLogger("evalkit.test_secrets")
    log.addHandler(handler)
    secrets.install()
    try:
        log.error("calling %s with %s", "http://x/?key=tok-123456789", "sk-abcdef123456")
        try:
            raise RuntimeError("boom tok-123456789")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = "\n".join(records)
    assert "tok-123456789" not in text and "sk-abcdef123456" not in text and "***MY_SERVICE_TOKEN" in text


@pytest.mark.model
def test_cli_run_against_an_echoing_server_leaks_nothing(server, tmp_path):
    pytest.importorskip("profanity_check")
    server.mode = "echo400"
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PERSPECTIVE_API_KEY": KEY}
    cmd = [sys.executable, "-m", "evalkit.cli", f"output_dir={out}", "suite=smoke", "~suite.tasks.arc_easy",
           "~suite.tasks.mmlu", "~suite.tasks.gsm8k",
           "+suite.tasks.realtoxicityprompts={limit: 1, generation: {n: 1, max_new_tokens: 4}}",
           "scorer=perspective", f"scorer.endpoint={_endpoint(server)}", "scorer.max_retries=0", "progress=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode in (0, 2), proc.stderr[-2000:]
    assert _Handler.seen and _Handler.seen[0]["headers"]["X-Goog-Api-Key"] == KEY  # the request was made
    refused = "Perspective API refused a request"
    if proc.returncode == 2:  # the scorer's failure ended the run in one line
        assert proc.stderr.strip().splitlines()[-1].startswith(f"evalkit: error: {refused}")
    else:  # or it was recorded on the item (judge errors never end a run) and the item left unscored
        samples = (next(out.rglob("realtoxicityprompts.jsonl"))).read_text()
        assert refused in samples and "judge_error" in samples
    assert "Traceback" not in proc.stderr
    assert KEY not in proc.stdout and KEY not in proc.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
