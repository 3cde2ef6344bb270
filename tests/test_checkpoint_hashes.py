"""Every shipped generator folder loads and samples bit-identically: sha256 of a few seeded images.

For each folder under ``checkpoints/`` that ``softdimo sample`` reads (teachers at 2 sampler steps,
one-step students at their one step), a fixed seed draws a few images on one thread; the sha256
of the images as uint8 must equal the one stored in ``tests/data/checkpoint_hashes.json``. A
refactor that changes how a folder loads, how a condition is encoded or which random numbers a
sampler draws shows up here.

A retrained checkpoint changes its hash on purpose: regenerate the file with
``SOFTDIMO_WRITE_HASHES=1 .venv/bin/python -m pytest -q tests/test_checkpoint_hashes.py`` and
commit it with the new weights.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from softdimo.paths import checkpoint_dir
from softdimo.sample import SamplingOptions, load_generator

HASHES = Path(__file__).parent / "data" / "checkpoint_hashes.json"
WRITE = os.environ.get("SOFTDIMO_WRITE_HASHES") == "1"
PROMPTS = ["a photo of a red 3", "a photo of two digits", "a photo of a 7 left of a 1"]

# folder → (steps, labels, prompts): teachers sample with 2 steps, students with their one step
CASES = {
    "teacher-mnist": (2, [0, 3, 7], None),
    "teacher-mnist-all": (2, [0, 3, 7], None),
    "dimo-mnist": (None, [0, 3, 7, 9], None),
    "soft-dimo-mnist": (None, [0, 3, 7, 9], None),
    "teacher-fashion": (2, [0, 3, 7], None),
    "dimo-fashion": (None, [0, 3, 7, 9], None),
    "soft-dimo-fashion": (None, [0, 3, 7, 9], None),
    "teacher-world": (2, None, PROMPTS),
    "dimo-world": (None, None, PROMPTS),
    "soft-reward-world": (None, None, PROMPTS),
}


def image_hash(name: str) -> str:
    """sha256 of the uint8 images the folder ``name`` draws with seed 0 (see :data:`CASES`)."""
    steps, labels, prompts = CASES[name]
    gen = load_generator(checkpoint_dir(name), "cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        images = gen.generate(labels=labels, prompts=prompts, options=SamplingOptions(steps=steps),
                              generator=torch.Generator().manual_seed(0))
    finally:
        torch.set_num_threads(before)
    pixels = (images.float().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    return hashlib.sha256(pixels.numpy().tobytes()).hexdigest()


def stored() -> dict[str, str]:
    return json.loads(HASHES.read_text()) if HASHES.is_file() else {}


@pytest.mark.parametrize("name", list(CASES))
def test_shipped_checkpoint_samples_bit_identically(name):
    if not (checkpoint_dir(name)).is_dir():
        pytest.skip(f"checkpoints/{name} is not shipped in this checkout")
    got = image_hash(name)
    if WRITE:
        table = stored()
        table[name] = got
        HASHES.parent.mkdir(parents=True, exist_ok=True)
        HASHES.write_text(json.dumps(dict(sorted(table.items())), indent=2) + "\n")
        return
    want = stored().get(name)
    assert want is not None, f"no stored hash for {name}: run with SOFTDIMO_WRITE_HASHES=1 once and commit the file"
    assert got == want, (f"checkpoints/{name} samples differently than when its hash was stored; if the checkpoint "
                         f"was retrained on purpose, regenerate tests/data/checkpoint_hashes.json")
