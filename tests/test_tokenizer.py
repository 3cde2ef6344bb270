"""VQ tokenizer: shapes, decode_soft ≡ decode on one-hot inputs, gradients, save/load, errors,
EMA codebook with dead-code restarts, and that training reduces the loss."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from softdimo.errors import CheckpointError, DataError
from softdimo.tokenizer import VQ_PRESETS, EMAVectorQuantizer, VQConfig, VQTokenizer

TINY = VQ_PRESETS["tiny"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _images(n: int, cfg: VQConfig = TINY, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)


def _trained(steps: int = 3, seed: int = 0) -> VQTokenizer:
    """Tiny model after a few training steps (codebook initialised from data, EMA moved)."""
    torch.manual_seed(seed)
    model = VQTokenizer(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = _images(16, seed=seed)
    for _ in range(steps):
        loss, _ = model.training_loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_shapes_and_ranges():
    model = _trained()
    h, w = model.grid
    assert (h, w) == (4, 4) and model.num_tokens == TINY.codebook_size
    assert model.codebook().shape == (TINY.codebook_size, TINY.codebook_dim)
    x = _images(5)
    ids = model.encode(x)
    assert ids.shape == (5, h, w) and ids.dtype == torch.long
    assert 0 <= int(ids.min()) and int(ids.max()) < model.num_tokens
    img = model.decode(ids)
    assert img.shape == x.shape
    assert float(img.detach().min()) >= 0.0 and float(img.detach().max()) <= 1.0
    assert torch.equal(model.decode(ids.view(5, h * w)), img)  # [B, L] layout
    p = torch.softmax(torch.randn(5, h * w, model.num_tokens), -1)
    assert model.decode_soft(p).shape == x.shape
    assert torch.equal(model.decode_soft(p), model.decode_soft(p.view(5, h, w, -1)))


def test_presets_grids():
    assert VQ_PRESETS["mnist"].grid == (7, 7) and VQ_PRESETS["mnist"].in_channels == 1
    assert VQ_PRESETS["world"].grid == (8, 8) and VQ_PRESETS["world"].in_channels == 3
    world = VQTokenizer(VQ_PRESETS["world"])
    loss, logs = world.training_loss(_images(2, VQ_PRESETS["world"]))
    loss.backward()
    assert torch.isfinite(loss) and world.encode(_images(1, VQ_PRESETS["world"])).shape == (1, 8, 8)


def test_decode_soft_of_one_hot_equals_decode():
    model = _trained()
    ids = torch.randint(0, model.num_tokens, (4, *model.grid), generator=torch.Generator().manual_seed(1))
    hard = model.decode(ids)
    soft = model.decode_soft(F.one_hot(ids, model.num_tokens).float())
    torch.testing.assert_close(soft, hard, atol=1e-5, rtol=0)


def test_gradients_reach_probabilities():
    model = _trained()
    logits = torch.randn(3, *model.grid, model.num_tokens, requires_grad=True)
    out = model.decode_soft(torch.softmax(logits, -1))
    (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_encode_decode_consistent_with_codebook():
    model = _trained()
    cb = model.codebook()
    # Every code quantises to itself, so ids → codebook latent → ids is the identity.
    assert torch.equal(model.quantizer.nearest(cb), torch.arange(model.num_tokens))
    x = _images(4, seed=3)
    ids = model.encode(x)
    latent = cb[ids]  # [B, h, w, d]: what the decoder sees for these tokens
    torch.testing.assert_close(model.decode(ids), model.decode_latent(latent), atol=0, rtol=0)
    recon, ids2 = model.reconstruct(x)
    assert torch.equal(ids2, ids) and torch.equal(recon, model.decode(ids))
    # encode is nearest-code assignment of the encoder output.
    z = model.encoder(x).permute(0, 2, 3, 1)
    d2 = (z[..., None, :] - cb).pow(2).sum(-1)
    assert torch.equal(d2.argmin(-1), ids)


def test_save_load_round_trip(tmp_path):
    model = _trained(steps=4)
    model.save_pretrained(tmp_path / "vq")
    loaded = VQTokenizer.from_pretrained(tmp_path / "vq").eval()
    assert loaded.config == model.config and isinstance(loaded.config.channel_mult, tuple)
    x = _images(3, seed=5)
    assert torch.equal(loaded.encode(x), model.encode(x))
    ids = model.encode(x)
    assert torch.equal(loaded.decode(ids), model.decode(ids))
    for name in ("embedding", "cluster_size", "embed_sum", "initialized"):
        assert torch.equal(getattr(loaded.quantizer, name), getattr(model.quantizer, name))


def test_corrupt_weights_raise_checkpoint_error(tmp_path):
    path = _trained(steps=1).save_pretrained(tmp_path / "vq")
    (path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        VQTokenizer.from_pretrained(path)


def test_mismatched_config_raises_checkpoint_error(tmp_path):
    path = _trained(steps=1).save_pretrained(tmp_path / "vq")
    cfg = json.loads((path / "config.json").read_text())
    cfg["codebook_size"] = TINY.codebook_size * 2
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not match"):
        VQTokenizer.from_pretrained(path)


def test_wrong_inputs_raise_data_error():
    model = VQTokenizer(TINY).eval()
    with pytest.raises(DataError, match="1-channel.*got 3"):
        model.encode(torch.rand(2, 3, 8, 8))
    with pytest.raises(DataError, match="8×8.*got 16×16"):
        model.encode(torch.rand(2, 1, 16, 16))
    with pytest.raises(DataError):
        model.training_loss(torch.rand(2, 8, 8))
    with pytest.raises(DataError, match="float"):
        model.encode(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(DataError, match="grid"):
        model.decode(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(DataError, match=r"\[0, 15\]"):
        model.decode(torch.full((2, 16), 16, dtype=torch.long))  # the mask id
    with pytest.raises(DataError, match="K=16"):
        model.decode_soft(torch.rand(2, 16, 17))


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        VQConfig(image_size=30, channel_mult=(1, 2, 2))
    with pytest.raises(ValueError, match="norm_groups"):
        VQConfig(base_channels=12, norm_groups=8)


def test_ema_moves_codes_to_cluster_means():
    torch.manual_seed(0)
    q = EMAVectorQuantizer(num_codes=2, dim=2, decay=0.5, dead_threshold=0.0)
    q.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    q.embed_sum.copy_(q.embedding)
    q.cluster_size.fill_(1.0)
    q.initialized.fill_(1)
    z = torch.cat([torch.full((50, 2), 1.0), torch.full((50, 2), 9.0)])
    for _ in range(30):
        q(z)
    torch.testing.assert_close(q.embedding, torch.tensor([[1.0, 1.0], [9.0, 9.0]]), atol=1e-3, rtol=0)


def test_dead_codes_are_restarted_and_used():
    torch.manual_seed(0)
    k = 8
    q = EMAVectorQuantizer(num_codes=k, dim=2, decay=0.9, dead_threshold=0.1)
    # Code 0 sits on the data; codes 1..7 sit far away, so no vector ever picks them.
    q.embedding.copy_(torch.cat([torch.zeros(1, 2), torch.full((k - 1, 2), 100.0)]))
    q.embed_sum.copy_(q.embedding)
    q.cluster_size.copy_(torch.tensor([1.0] + [0.0] * (k - 1)))
    q.initialized.fill_(1)
    z = torch.randn(256, 2)
    q.eval()
    assert q(z).usage == 1 / k  # without updates only code 0 is used
    q.train()
    out = q(z)
    assert out.restarted == k - 1
    assert float(q.embedding.abs().max()) < 10  # restarted codes moved onto the data
    for _ in range(5):
        out = q(z)
    assert out.usage == 1.0
    # Restarts draw from torch's global RNG: the same seed gives the same codebook.
    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        q2 = EMAVectorQuantizer(num_codes=k, dim=2)
        q2(z)
        return q2.embedding.clone()
    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def _flat_background_batch() -> torch.Tensor:
    """90 % copies of one 'background' vector, 10 % spread 'foreground' vectors."""
    g = torch.Generator().manual_seed(0)
    return torch.cat([torch.zeros(900, 2), 5 + 3 * torch.randn(100, 2, generator=g)])


def test_error_sampling_keeps_new_codes_off_a_dominant_flat_cluster():
    z = _flat_background_batch()

    def codes_on_background(sampling: str) -> int:
        torch.manual_seed(0)
        q = EMAVectorQuantizer(num_codes=16, dim=2, code_sampling=sampling)
        q(z)  # first training call: initialise from the batch
        return int((q.embedding.norm(dim=1) < 0.1).sum())

    assert codes_on_background("uniform") >= 8  # uniform seeding follows the 90 % mass
    assert codes_on_background("error") == 1  # D² seeding: the flat cluster gets one code
    # Restarts: dead codes go where the quantisation error is, never onto a vector already coded.
    torch.manual_seed(0)
    q = EMAVectorQuantizer(num_codes=4, dim=2, decay=0.9, dead_threshold=0.1, code_sampling="error")
    q.embedding.copy_(torch.cat([torch.zeros(1, 2), torch.full((3, 2), 100.0)]))
    q.embed_sum.copy_(q.embedding)
    q.cluster_size.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    q.initialized.fill_(1)
    assert q(z).restarted == 3
    assert bool((q.embedding[1:].norm(dim=1) > 0.5).all())
    with pytest.raises(ValueError, match="code_sampling"):
        EMAVectorQuantizer(num_codes=4, dim=2, code_sampling="kmeans")

def test_training_model_restarts_codes_and_keeps_state_in_buffers():
    model = VQTokenizer(dataclasses.replace(TINY, dead_code_threshold=0.5, ema_decay=0.5))
    buffers = dict(model.named_buffers())
    assert {"quantizer.embedding", "quantizer.cluster_size", "quantizer.embed_sum"} <= set(buffers)
    assert all(not p_name.startswith("quantizer.") for p_name, _ in model.named_parameters())
    torch.manual_seed(0)
    x = _images(8)
    restarted = 0.0
    for _ in range(5):
        _, logs = model.training_loss(x)
        restarted += logs["restarted"]
    assert restarted > 0
    assert set(logs) >= {"loss", "recon_l1", "recon_mse", "commitment", "perplexity", "usage",
                         "restarted", "psnr"}


def test_training_loss_decreases_on_fixed_batch():
    torch.manual_seed(0)
    model = VQTokenizer(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = (_images(16, seed=7) > 0.5).float()
    losses = []
    for _ in range(30):
        loss, _ = model.training_loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def _ddp_worker(rank: int, world: int, port: int, queue) -> None:  # pragma: no cover - subprocess
    import os

    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # same initial weights
        model = VQTokenizer(dataclasses.replace(TINY, ema_decay=0.5, dead_code_threshold=0.5))
        torch.manual_seed(100 + rank)  # different data and RNG stream per process
        restarted = 0.0
        for _ in range(10):
            _, logs = model.training_loss(torch.rand(8, 1, 8, 8))
            restarted += logs["restarted"]
        queue.put((rank, model.quantizer.embedding.tolist(), model.quantizer.cluster_size.tolist(),
                   restarted))
    finally:
        dist.destroy_process_group()


def test_distributed_processes_keep_the_same_codebook():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted((queue.get(timeout=60) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(timeout=30)
    (_, emb0, cs0, n0), (_, emb1, cs1, n1) = results
    assert n0 == n1 > 0  # restarts happened, and on both processes alike
    assert emb0 == emb1 and cs0 == cs1
