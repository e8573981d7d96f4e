"""The OpenAI-compatible backend against a real server: ``transformers serve`` running the
embedded model, started here on a free port (once for the module: it is slow to start),
with a fault-injecting proxy in front of it for 429 / 500 / dropped connections / stalls.

Workloads are tiny (GSM8K sample items, one exemplar, a few new tokens) so the module
stays fast on two busy cores.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from evalkit.errors import EvalkitError
from evalkit.files import read_jsonl
from evalkit.paths import SAMPLES_DIR
from evalkit.runner.answer import RequestsFailed
from evalkit.runner.run import run
from tests.conftest import run_config
from tests.http_servers import Fault, FaultProxy, TransformersServer, free_port, serve_command

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(serve_command() is None, reason="transformers serve needs the dev extras (fastapi, uvicorn, openai)"),
]

GSM_TEST = [json.loads(line) for line in (SAMPLES_DIR / "gsm8k" / "test.jsonl").read_text().splitlines() if line.strip()]


def tiny_suite(limit: int = 2, new_tokens: int = 12) -> dict:
    return {"name": "http_tiny", "tasks": {"gsm8k": {"limit": limit, "fewshot": {"n": 1},
                                                      "generation": {"max_new_tokens": new_tokens}}}}


def http_config(tmp_path, base_url: str, *overrides: str, suite: dict | None = None) -> dict:
    cfg = run_config(tmp_path, "model=openai_compatible", f"model.base_url={base_url}", "model.backoff_s=0.05",
                     "model.timeout_s=600", *overrides)
    cfg["suite"] = suite or tiny_suite()
    return cfg


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = TransformersServer(tmp_path_factory.mktemp("serve") / "serve.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxy(server):
    p = FaultProxy(server.base_url[: -len("/v1")])
    yield p
    p.close()


@pytest.fixture(autouse=True)
def _clean_proxy(request):
    if "proxy" in request.fixturenames:
        p = request.getfixturevalue("proxy")
        p.faults.clear()
        p.bodies.clear()
        p.faults_served = 0


def _answers(run_dir) -> int:
    with sqlite3.connect(run_dir / "requests.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


def test_completions_agree_with_in_process_and_record_the_server(server, proxy, backend, tmp_path):
    cfg = http_config(tmp_path / "http", proxy.base_url, "model.concurrency=2",
                      "model.price_input_per_mtok=1.5", "model.price_output_per_mtok=3")
    run_dir = run(cfg)
    res = json.loads((run_dir / "results.json").read_text())
    srv = res["model"]["server"]
    assert srv["served_model"] == server.model and srv["host"] == f"127.0.0.1:{proxy.port}"
    assert srv["version_headers"].get("server") == "uvicorn"
    tok = res["tokens"]
    assert tok["prompt_tokens"] > 0 and tok["completion_tokens"] > 0
    assert tok["cost_estimate"] == pytest.approx((tok["prompt_tokens"] * 1.5 + tok["completion_tokens"] * 3) / 1e6)
    # Sampling settings always explicit; stop strings sent.
    for body in proxy.bodies:
        assert {"temperature", "top_p", "seed", "n", "max_tokens"} <= set(body) and body["temperature"] == 0.0
        assert body["stop"] == ["Question:", "</s>", "<|im_end|>"] and body["max_tokens"] == 12

    local_cfg = run_config(tmp_path / "local")
    local_cfg["suite"] = tiny_suite()
    local_dir = run(local_cfg, backend=backend)
    http_out = {r["id"]: r["outputs"] for r in read_jsonl(run_dir / "samples" / "gsm8k.jsonl")}
    local_out = {r["id"]: r["outputs"] for r in read_jsonl(local_dir / "samples" / "gsm8k.jsonl")}
    assert http_out == local_out


def test_chat_api_sends_exemplars_as_turns(server, proxy, tmp_path):
    cfg = http_config(tmp_path, proxy.base_url, "model.api=chat", "model.chat_template=true", suite=tiny_suite(1, 8))
    run_dir = run(cfg)
    (body,) = [b for b in proxy.bodies if "messages" in b]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][-1]["content"].startswith("Question: " + GSM_TEST[0]["question"])
    (rec,) = read_jsonl(run_dir / "samples" / "gsm8k.jsonl")
    assert rec["outputs"][0].strip() and "Question:" not in rec["outputs"][0]


def test_429_500_and_dropped_connections_are_retried(server, proxy, tmp_path):
    proxy.faults.extend([Fault("status", 429, headers={"Retry-After": "1"}), Fault("status", 500), Fault("drop")])
    cfg = http_config(tmp_path, proxy.base_url, suite=tiny_suite(1, 4))
    t0 = time.monotonic()
    run_dir = run(cfg)
    res = json.loads((run_dir / "results.json").read_text())
    assert proxy.faults_served == 3 and res["tokens"]["http_retries"] == 3
    assert time.monotonic() - t0 >= 1.0  # the Retry-After second was waited
    assert res["requests"]["computed"] == 1


def test_a_stalled_server_is_timed_out_and_retried(server, proxy):
    from evalkit.backends.openai.backend import OpenAICompatibleBackend

    proxy.faults.append(Fault("stall", seconds=5))  # the next POST stalls past the timeout
    b = OpenAICompatibleBackend(proxy.base_url, timeout_s=2, backoff_s=0.05, max_retries=3)
    problem = b.probe_logprobs()  # one POST; stalled first, then answered
    assert b.client.retries >= 1 and proxy.faults_served == 1
    assert problem  # transformers serve ignores echo/logprobs: the probe says so
    b.close()


def test_server_without_prompt_logprobs_refuses_loglikelihood_tasks_before_work(server, proxy, tmp_path):
    suite = {"name": "mc", "tasks": {"arc_easy": {"limit": 2}, "gsm8k": {"limit": 1}}}
    cfg = http_config(tmp_path, proxy.base_url, suite=suite)
    with pytest.raises(EvalkitError, match=r"cannot score text .* tasks that need log-likelihood: arc_easy"):
        run(cfg)
    assert not [b for b in proxy.bodies if "echo" not in b]  # no generation was sent


def test_failed_requests_are_not_cached_and_the_same_command_retries_only_them(server, proxy, tmp_path):
    proxy.faults.append(Fault("status", 500, match=GSM_TEST[1]["question"][:40], forever=True))
    cfg = http_config(tmp_path, proxy.base_url, "model.max_retries=1")
    with pytest.raises(RequestsFailed, match=r"^1 of 2 requests failed .*HTTP 500.*run the same command again"):
        run(cfg)
    run_dir = tmp_path / "runs"
    (folder,) = list(run_dir.iterdir())
    assert _answers(folder) == 1 and not (folder / "results.json").exists()
    proxy.faults.clear()
    proxy.bodies.clear()
    run(cfg)
    res = json.loads((folder / "results.json").read_text())
    assert res["requests"] == {"total": 2, "unique": 2, "from_cache": 1, "computed": 1, "failed": 0}
    assert len(proxy.bodies) == 1 and GSM_TEST[1]["question"][:40] in proxy.bodies[0]["prompt"]


def test_server_that_is_down_ends_with_one_line(tmp_path):
    cfg = http_config(tmp_path, f"http://127.0.0.1:{free_port()}/v1", "model.max_retries=0")
    with pytest.raises(EvalkitError, match=r"is the server running\?"):
        run(cfg)


def test_killed_server_restarted_resumes_without_recomputing(server, tmp_path):
    """Kill the server after the first answer is saved, restart it, run the same command."""
    cfg = http_config(tmp_path, server.base_url, "model.concurrency=1", "model.max_retries=1",
                      suite=tiny_suite(3, 8))
    killed = threading.Event()

    def killer() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            folders = list((tmp_path / "runs").glob("*/requests.sqlite"))
            if folders and _answers(folders[0].parent) >= 1:
                server.kill()
                killed.set()
                return
            time.sleep(0.2)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    with pytest.raises(RequestsFailed, match=r"of 3 requests failed"):
        run(cfg)
    t.join()
    assert killed.is_set()
    (folder,) = list((tmp_path / "runs").iterdir())
    saved = _answers(folder)
    assert 1 <= saved < 3
    server.start()
    run(cfg)
    res = json.loads((folder / "results.json").read_text())
    assert res["requests"]["from_cache"] == saved and res["requests"]["computed"] == 3 - saved
