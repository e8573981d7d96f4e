"""The backend registry: names, each backend's own config check, declared capabilities
checked against the suite before any weights load, and run identity across speed-only
settings."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from evalkit.backends.api import Backend, Capabilities
from evalkit.backends.registry import BACKENDS
from evalkit.config import validate
from evalkit.errors import ConfigError
from evalkit.runner.run import run
from evalkit.rundir import run_dir_for
from tests.conftest import run_config


class GenerateOnly(Backend):
    """A served model that only generates; loading it is a test failure."""

    capabilities = Capabilities(loglikelihood=False, rolling=False, sampling=False)

    @classmethod
    def check_config(cls, model_cfg: dict[str, Any]) -> None:
        if not str(model_cfg.get("base_url", "")).startswith("http"):
            raise ConfigError(f"model.base_url must be an http(s) URL (got {model_cfg.get('base_url')!r})")

    def __init__(self, **_: Any) -> None:
        raise AssertionError("weights loaded before the capability check")

    def loglikelihood(self, requests: Sequence) -> Iterator:
        raise NotImplementedError

    loglikelihood_rolling = generate = loglikelihood

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        return {}


@pytest.fixture
def served(monkeypatch, tmp_path):
    monkeypatch.setitem(BACKENDS, "served", f"{__name__}:GenerateOnly")
    cfg = run_config(tmp_path, "suite=smoke", "limit=1")
    cfg["model"] = {"backend": "served", "name": "served", "base_url": "http://127.0.0.1:1/v1", "chat_template": False}
    return cfg


def test_a_model_config_without_hf_keys_validates_with_its_own_backend(served):
    validate(served)  # no dtype, device, add_bos, batch_size: not this backend's keys
    served["model"]["base_url"] = "localhost"
    with pytest.raises(ConfigError, match=r"^model.base_url must be an http\(s\) URL"):
        validate(served)


def test_unknown_backend_is_one_line_listing_the_choices(served):
    served["model"]["backend"] = "vllm"
    with pytest.raises(ConfigError) as e:
        validate(served)
    assert "\n" not in str(e.value) and "served" in str(e.value) and "hf" in str(e.value)


def test_a_suite_needing_loglikelihood_stops_before_the_model_loads(served):
    with pytest.raises(ConfigError) as e:
        run(served)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("model.backend=served cannot do loglikelihood (arc_easy, mmlu)")


def test_a_generate_only_suite_passes_the_capability_check(served):
    served["suite"]["tasks"] = {"gsm8k": {"limit": 1}}
    with pytest.raises(AssertionError, match="weights loaded"):  # got as far as loading
        run(served)


def test_speed_only_settings_keep_the_run_folder():
    cfg = run_config(__import__("pathlib").Path("/tmp/unused"))
    base = run_dir_for(cfg)
    for key, value in (("prefix_sharing", not cfg["model"]["prefix_sharing"]), ("batch_size", 3)):
        assert run_dir_for({**cfg, "model": {**cfg["model"], key: value}}) == base, key
    assert run_dir_for({**cfg, "model": {**cfg["model"], "dtype": "bfloat16"}}) != base


@pytest.mark.model
def test_flipping_prefix_sharing_resumes_the_same_run(backend, tmp_path):
    cfg = run_config(tmp_path, "suite=smoke", "limit=1", "~suite.tasks.gsm8k")
    first = run(cfg, backend=backend)
    flipped = {**cfg, "model": {**cfg["model"], "prefix_sharing": not cfg["model"]["prefix_sharing"]}}
    second = run(flipped, backend=backend)
    assert second == first
    res = json.loads((second / "results.json").read_text())
    assert res["requests"]["computed"] == 0 and res["requests"]["from_cache"] == res["requests"]["unique"] > 0
