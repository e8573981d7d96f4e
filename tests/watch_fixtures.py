"""Fixtures for the watch tests: a small multiple-choice data root, and checkpoints of the
embedded model written the way a trainer writes them (over time, not atomically).

Run as a script it plays a training run: ``python -m tests.watch_fixtures SRC OUT DELAY``
writes checkpoint-100 (unchanged copy), checkpoint-200 (lightly perturbed) and
checkpoint-300 (every MLP zeroed) into OUT, DELAY seconds apart.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path

from evalkit.paths import SAMPLES_DIR

_CATEGORIES = {
    "fruit": "apple banana orange grape pear peach cherry mango lemon plum strawberry watermelon",
    "animal": "dog cat horse cow lion tiger rabbit sheep elephant monkey bear mouse",
    "vehicle": "car bus truck bicycle train airplane boat motorcycle taxi van tractor ship",
    "tool": "hammer saw screwdriver wrench drill shovel rake axe pliers chisel ladder knife",
    "body part": "arm leg hand foot head nose ear eye finger knee elbow shoulder",
}
_OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"), ("day", "night"),
              ("open", "closed"), ("wet", "dry"), ("light", "dark"), ("old", "young"), ("full", "empty"),
              ("hard", "soft"), ("rich", "poor"), ("early", "late"), ("loud", "quiet"), ("strong", "weak"),
              ("thick", "thin"), ("win", "lose"), ("inside", "outside"), ("first", "last")]


def write_data_root(root: Path) -> Path:
    """ARC-style files under ``root/arc``: 60 category questions (ARC-e) and 40 opposites (ARC-c)."""
    rng = random.Random(7)
    easy = []
    for cat, words in _CATEGORIES.items():
        others = [w for c, ws in _CATEGORIES.items() if c != cat for w in ws.split()]
        for i, word in enumerate(words.split()):
            easy.append(_item(f"cat-{cat}-{i}", f"Which of these is a {cat}?", word, rng.sample(others, 3), rng))
    hard = []
    words = [w for pair in _OPPOSITES for w in pair]
    for i, (a, b) in enumerate(_OPPOSITES):
        for j, (x, y) in enumerate(((a, b), (b, a))):
            wrong = rng.sample([w for w in words if w not in (a, b)], 3)
            hard.append(_item(f"opp-{i}-{j}", f"What is the opposite of {x}?", y, wrong, rng))
    arc = root / "arc"
    arc.mkdir(parents=True, exist_ok=True)
    _jsonl(arc / "arc_easy_test.jsonl", easy)
    _jsonl(arc / "arc_challenge_test.jsonl", hard)
    for name in ("arc_easy_train.jsonl", "arc_challenge_train.jsonl"):
        shutil.copy(SAMPLES_DIR / "arc" / name, arc / name)
    return root


def _item(id_: str, stem: str, right: str, wrong: list[str], rng: random.Random) -> dict:
    options = [right, *wrong]
    rng.shuffle(options)
    labels = "ABCD"
    return {"id": id_, "question": {"stem": stem, "choices": [{"text": t, "label": labels[k]} for k, t in enumerate(options)]},
            "answerKey": labels[options.index(right)]}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_checkpoint(src: Path, dst: Path, kind: str, step: int, chunks: int = 8, pause: float = 0.15) -> Path:
    """Write a checkpoint of ``src`` into ``dst`` as a trainer would: small files, then the
    weights in ``chunks`` pieces with pauses (a partly written file for a while), then
    ``trainer_state.json``. ``kind``: same | perturbed | damaged."""
    import torch
    from safetensors.torch import load_file, save

    tensors = load_file(str(src / "model.safetensors"))
    gen = torch.Generator().manual_seed(step)
    for name, t in tensors.items():
        if kind == "perturbed" and t.is_floating_point():
            # 0.1% relative noise: a light training step that should change almost no prediction
            t.add_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * t.std() * 1e-3)
        elif kind == "damaged" and ".mlp." in name:
            t.zero_()
    data = save(tensors)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("model.safetensors", "SOURCE"):
            shutil.copy(f, dst / f.name)
    size = -(-len(data) // chunks)
    with open(dst / "model.safetensors", "wb") as out:
        for i in range(chunks):
            out.write(data[i * size:(i + 1) * size])
            out.flush()
            time.sleep(pause)
    (dst / "trainer_state.json").write_text(json.dumps({"global_step": step, "epoch": step / 300}), encoding="utf-8")
    return dst


def play_training(src: Path, out: Path, delay: float) -> None:
    for step, kind in ((100, "same"), (200, "perturbed"), (300, "damaged")):
        time.sleep(delay)
        write_checkpoint(src, out / f"checkpoint-{step}", kind, step)
        print(f"wrote checkpoint-{step} ({kind})", flush=True)


if __name__ == "__main__":
    play_training(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
