"""VQ image tokenizer (encode / decode / decode_soft) and its presets."""
from __future__ import annotations

from .quantizer import EMAVectorQuantizer, QuantizerOutput
from .vq import VQConfig, VQTokenizer

VQ_PRESETS: dict[str, VQConfig] = {
    # MNIST: 1×28×28 → 7×7 tokens.
    "mnist": VQConfig(in_channels=1, image_size=28, base_channels=32, channel_mult=(1, 2, 2),
                      num_res_blocks=1, mid_res_blocks=1, codebook_size=512, codebook_dim=16),
    # Digit world: 3×32×32 → 8×8 tokens.
    "world": VQConfig(in_channels=3, image_size=32, base_channels=32, channel_mult=(1, 2, 2),
                      num_res_blocks=1, mid_res_blocks=1, codebook_size=512, codebook_dim=16),
    # Tests: tiny and fast.
    "tiny": VQConfig(in_channels=1, image_size=8, base_channels=8, channel_mult=(1, 2),
                     num_res_blocks=1, mid_res_blocks=0, norm_groups=4, codebook_size=16,
                     codebook_dim=4),
}

__all__ = ["VQConfig", "VQTokenizer", "VQ_PRESETS", "EMAVectorQuantizer", "QuantizerOutput"]
