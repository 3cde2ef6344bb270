"""The CLIP BPE tokenizer from local files, for every CLIP-family reward (CLIP score, HPSv2, PickScore).

OpenAI CLIP, open_clip's ViT models (hence HPSv2) and PickScore share one byte-level BPE vocabulary
of 49 408 tokens. It is loaded with ``transformers.CLIPTokenizer`` from whichever of these a folder
(or its ``tokenizer/`` subfolder) holds:

* ``vocab.json`` + ``merges.txt`` — the Hugging Face files (any CLIP repository has them);
* ``tokenizer.json`` — the same vocabulary in the ``tokenizers`` format;
* ``bpe_simple_vocab_16e6.txt.gz`` — open_clip's own file (it ships inside the ``open_clip_torch``
  wheel); it is converted to ``vocab.json`` + ``merges.txt`` in a temporary folder the way
  open_clip's ``SimpleTokenizer`` builds its vocabulary (256 byte symbols, the same with ``</w>``,
  the first 48 894 merges, then ``<|startoftext|>`` and ``<|endoftext|>``).

Prompts are padded to the longest and truncated to the text model's context length (77), keeping
``<|endoftext|>`` last as open_clip does. Text cleaning differs slightly from open_clip's (which
runs ``ftfy``) on unusual Unicode; ordinary prompts tokenise identically.
"""
from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

from ...errors import CheckpointError
from ...safeload import hf_from_pretrained

BPE_GZ = "bpe_simple_vocab_16e6.txt.gz"
TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",), (BPE_GZ,))
TOKENIZER_EXPECTED = "vocab.json + merges.txt (or tokenizer.json, or open_clip's bpe_simple_vocab_16e6.txt.gz)"
NUM_MERGES = 49152 - 256 - 2  # open_clip's SimpleTokenizer keeps merges[1 : NUM_MERGES + 1]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from the 256 byte values to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def bpe_gz_to_hf(gz: Path, out: Path) -> None:
    """Write ``vocab.json`` + ``merges.txt`` into ``out`` from open_clip's ``bpe_simple_vocab_16e6.txt.gz``."""
    lines = gzip.open(gz, "rt", encoding="utf-8").read().split("\n")
    merges = [m for m in lines[1:NUM_MERGES + 1] if m.strip()]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def tokenizer_folder(folder: Path) -> Path | None:
    """The folder (``folder`` or ``folder/tokenizer``) holding CLIP tokenizer files, if any."""
    for f in (folder, folder / "tokenizer"):
        if any(all((f / n).is_file() for n in group) for group in TOKENIZER_FILES):
            return f
    return None


def load_clip_tokenizer(kind: str, folder: Path, expected: str):
    """A ``CLIPTokenizer`` from the files in ``folder`` (or ``folder/tokenizer``); no downloads."""
    from transformers import CLIPTokenizerFast as CLIPTokenizer  # tokenizers-backed: reads tokenizer.json too

    where = tokenizer_folder(folder)
    if where is None:
        raise CheckpointError(f"reward '{kind}': no CLIP tokenizer files in {folder}: expected {TOKENIZER_EXPECTED}. "
                              f"A '{kind}' reward loads only from local files: {expected}.")
    what = f"reward '{kind}': the CLIP tokenizer"
    try:
        if (where / "vocab.json").is_file() or (where / "tokenizer.json").is_file():
            return hf_from_pretrained(CLIPTokenizer, where, what=what)
        with tempfile.TemporaryDirectory() as tmp:
            bpe_gz_to_hf(where / BPE_GZ, Path(tmp))
            return hf_from_pretrained(CLIPTokenizer, tmp, what=what)
    except Exception as e:  # OSError, JSON errors, or the tokenizers library's plain Exception on bad merges
        raise CheckpointError(f"reward '{kind}': the tokenizer files in {where} could not be read ({e}). "
                              f"Expected {TOKENIZER_EXPECTED}.") from e
