"""The demo gate on real damaged checkpoints of the embedded model (needs the real data).

Each checkpoint is the embedded SmolLM2-135M-Instruct loaded with transformers, damaged,
and saved to a temporary folder; ``suite=regression_demo`` runs it and ``evalkit compare
BASE NEW gate=demo`` judges it against the undamaged model. A gate that cannot tell a
broken checkpoint from a good one fails here: all MLPs zeroed must FAIL, six layers'
MLPs zeroed must not PASS, an identical copy must PASS. The 1%-noise copy is only
reported (its verdict depends on how much 1% noise hurts). Run with ``-s`` to see the
table of every row.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from evalkit.cli import main
from evalkit.runner.run import run
from tests.conftest import run_config

SIX_LAYERS = (0, 5, 10, 15, 20, 25)  # spread over the 30 layers
EXPECTED = {"all_mlps_zeroed": {1}, "six_mlps_zeroed": {1}, "noise_1pct": {0, 1}, "identical": {0}}


def _damage(model: torch.nn.Module, how: str) -> None:
    layers = model.model.layers
    with torch.no_grad():
        if how in ("all_mlps_zeroed", "six_mlps_zeroed"):
            chosen = range(len(layers)) if how == "all_mlps_zeroed" else SIX_LAYERS
            for i in chosen:
                for p in layers[i].mlp.parameters():
                    p.zero_()
        elif how == "noise_1pct":
            gen = torch.Generator().manual_seed(0)
            for p in model.parameters():
                p.mul_(1 + 0.01 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _checkpoint(src: Path, dst: Path, how: str) -> Path:
    """A copy of the model folder ``src`` with ``how`` applied, saved with transformers."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src, torch_dtype=torch.float32)
    _damage(model, how)
    model.save_pretrained(dst)
    for f in src.iterdir():  # tokenizer and chat template travel with the weights
        if f.is_file() and not (dst / f.name).exists():
            shutil.copy(f, dst / f.name)
    return dst


def _run(tmp_path: Path, name: str, pretrained: Path, data: Path) -> Path:
    cfg = run_config(tmp_path / name, "model=hf", f"model.pretrained={pretrained}", "model.dtype=float32",
                     "suite=regression_demo", f"data_root={data}")
    return run(cfg)


def test_the_demo_gate_fails_broken_checkpoints_and_passes_an_identical_copy(tmp_path, shared_data):
    from evalkit.backends.hf.loading import embedded_model_dir

    src = embedded_model_dir()
    t0 = time.perf_counter()
    base = _run(tmp_path, "base", src, shared_data)
    print(f"\nregression_demo, one run (base): {time.perf_counter() - t0:.1f} s")
    table, codes = [], {}
    for how in EXPECTED:
        ckpt = _checkpoint(src, tmp_path / "ckpt" / how, how)
        new = _run(tmp_path, how, ckpt, shared_data)
        shutil.rmtree(ckpt)  # 540 MB each
        out = tmp_path / "cmp" / how
        codes[how] = main(["compare", str(base), str(new), "gate=demo", "-o", str(out), "--no-html"])
        rows = json.loads((out / "comparison.json").read_text())["comparisons"][0]["rows"]
        for r in rows:
            table.append(f"| {how} | {r['row']} | {r['base']:.1f} | {r['new']:.1f} | {r['delta']:+.1f} "
                         f"({r['low']:+.1f}, {r['high']:+.1f}) | {r['n']}/{r['base_n']} | {r['verdict']} |")
        if how == "identical":
            assert all(r["delta"] == 0 and r["verdict"] == "pass" for r in rows)
        if how == "all_mlps_zeroed":
            assert any(r["verdict"] == "regression" for r in rows)
        if how == "six_mlps_zeroed":
            assert not all(r["verdict"] == "pass" for r in rows)
    print("| checkpoint | row | base | new | delta (95% CI) | items | verdict |\n|---|---|--:|--:|---|--:|---|")
    print("\n".join(table))
    print(f"total: {time.perf_counter() - t0:.1f} s")
    assert {h: c in EXPECTED[h] for h, c in codes.items()} == {h: True for h in EXPECTED}, codes


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-s", "-q"])
