"""Shared fixtures.

The embedded model is loaded once per test session (``backend``); tests that need the
real benchmark data use ``shared_data`` and skip when ``../shared/data`` is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evalkit.paths import ROOT, SAMPLES_DIR

SHARED_DATA = Path(os.environ.get("EVALKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def backend():
    """The embedded SmolLM2-135M-Instruct through the HF backend (loaded once)."""
    from evalkit.backends.hf.backend import HFBackend
    from evalkit.backends.hf.loading import EMBEDDED_SMOLLM2

    return HFBackend(EMBEDDED_SMOLLM2, name="smollm2-135m-instruct")


#: The suite every distributed-run test (shards, Ray) compares with one process.
DIST_SUITE = ("suite=smoke", "suite.tasks.gsm8k.generation.max_new_tokens=16")


@pytest.fixture(scope="session")
def dist_reference_run(backend, tmp_path_factory) -> Path:
    """``DIST_SUITE`` answered in this process: the reference of the shard and Ray tests."""
    from evalkit.runner.run import run

    return run(run_config(tmp_path_factory.mktemp("dist-reference"), *DIST_SUITE), backend=backend)


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES_DIR


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the real benchmark data in {SHARED_DATA}")
    return SHARED_DATA


def run_config(tmp_path: Path, *overrides: str) -> dict:
    """A resolved run config, as the CLI builds it, writing under ``tmp_path``."""
    from evalkit.hydra_checks import compose_config

    return compose_config([f"output_dir={tmp_path / 'runs'}", "report=false", "progress=false", *overrides])
