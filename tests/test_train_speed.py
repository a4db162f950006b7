"""benchmarks/train_speed.py: its reference loop computes the trainer's gradients, its peak is of the run's precision, its pythae peer is size-matched."""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks.train_speed import PythaePeer, ReferenceLoop, peak_flops
from vaegan.config import ModelConfig, TrainConfig
from vaegan.data import load_dataset
from vaegan.networks import VAEGAN, Discriminator
from vaegan.trainer import Trainer

TINY = ModelConfig(image_size=32, base_channels=8, latent_dim=8)


@pytest.mark.parametrize("state_weight", [0.0, 1.0])
def test_reference_loop_computes_the_trainers_gradients(eye_folder, tmp_path, state_weight, fp32_accelerator):
    """The benchmark's plain loop (one backward per network) is the same recipe as train_step (one backward, a hook at z)."""
    config = TrainConfig(out_dir=str(tmp_path), batch_size=8, device="cpu", mixed_precision="no", warmup_epochs=0, state_weight=state_weight)
    trainer = Trainer(config, TINY, load_dataset(eye_folder, image_size=32))
    reference = ReferenceLoop(TINY, config, torch.device("cpu"))
    reference.model.load_state_dict(trainer.model.state_dict())
    reference.disc.load_state_dict(trainer.discriminator.state_dict())
    x, labels = trainer.batch(torch.arange(8)), trainer.labels[:8]
    torch.manual_seed(1)
    trainer.train_step(x, labels)
    torch.manual_seed(1)
    reference.step(x, labels)
    pairs = [(trainer.model, reference.model), (trainer.discriminator, reference.disc)]
    for ours, theirs in pairs:
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            scale = q.grad.abs().max()
            assert (p.grad - q.grad).abs().max() <= 1e-4 * scale + 1e-7, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_peak_is_timed_in_the_precision_asked_and_in_bounded_time(dtype):
    start = time.perf_counter()
    peak = peak_flops(torch.device("cpu"), dtype, seconds=0.3)
    assert 0 < peak < 1e16
    assert time.perf_counter() - start < 5  # one product past the limit at most (2048^3 in bf16 emulation: ~1 s)


def test_pythae_peer_has_our_parameter_count_and_trains(tmp_path):
    pytest.importorskip("pythae")
    images = torch.randint(0, 256, (64, 1, 32, 32), dtype=torch.uint8)
    peer = PythaePeer(TINY, TrainConfig(), torch.device("cpu"), images, str(tmp_path))
    assert peer.parameters == sum(p.numel() for net in (VAEGAN(TINY), Discriminator(TINY)) for p in net.parameters())
    before = [p.detach().clone() for p in peer.model.parameters()]
    logs = peer.step(images[:8].float().div(127.5).sub(1))
    assert set(logs) == {"encoder_loss", "decoder_loss", "discriminator_loss"} and peer.steps == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, peer.model.parameters()))
