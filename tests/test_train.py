"""End to end: train.py in-process on a tiny fixture folder, resume, failure modes."""

import json
import math
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from vaegan import VAEGAN, losses
from vaegan.config import ModelConfig, TrainConfig
from vaegan.data import load_dataset, to_float
from vaegan.latent_map import LatentMap
from vaegan.networks import DISCRIMINATOR_FILE
from vaegan.pipeline import write_model_dir
from vaegan.trainer import CHECKPOINT_FILE, Trainer

TINY = ["--image-size", "32", "--base-channels", "8", "--latent-dim", "8", "--batch-size", "8", "--map-size", "30", "--device", "cpu"]


def run(eye_folder, out_dir, *extra):
    return train.main(["--data-dir", str(eye_folder), "--out-dir", str(out_dir), *TINY, *extra])


def test_train_writes_the_output_layout_and_the_app_can_load_it(eye_folder, tmp_path):
    out = tmp_path / "run"
    assert run(eye_folder, out, "--epochs", "2", "--warmup-epochs", "1", "--map-size", "20") == 0
    assert (out / CHECKPOINT_FILE).exists()
    assert {p.name for p in (out / "model").iterdir()} >= {"config.json", "model.safetensors", "latent_map.safetensors"}
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "epoch_001_recon.png", "epoch_001_samples.png", "epoch_002_recon.png", "epoch_002_samples.png",
    ]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["step"] == 2 * (24 // 8)
    assert all(math.isfinite(r["pixel"]) and math.isfinite(r["disc"]) for r in records)
    model = VAEGAN.from_pretrained(out / "model", strict=True)
    assert model.config == ModelConfig(image_size=32, base_channels=8, latent_dim=8)
    latent_map = LatentMap.load(out / "model")
    assert latent_map.mu.shape == (20, 8) and latent_map.xy.shape == (20, 2)
    assert set(latent_map.labels.tolist()) == {0, 1}
    from vaegan.hub import load_model

    loaded, loaded_map = load_model(str(out / "model"))
    assert loaded_map is not None and len(loaded_map) == 20
    assert loaded.decode(torch.zeros(1, 8)).shape == (1, 1, 32, 32)
    # the map holds train eyes only: every map latent is a training eye's, none a held-out eye's
    data = load_dataset(eye_folder, image_size=32)
    with torch.no_grad():
        mu_train = loaded.encode(to_float(data.subset("train").images))[0].numpy()
        mu_held_out = loaded.encode(to_float(data.subset("val", "test").images))[0].numpy()
    distance = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1).min(1)  # noqa: E731 - to the nearest row of b
    assert distance(latent_map.mu, mu_train).max() < 1e-6 and distance(latent_map.mu, mu_held_out).min() > 1e-4
    # one seed policy: the model card's samples are the last epoch's sample grid (the same z, the same weights)
    assert (out / "model" / "images" / "samples.png").read_bytes() == (out / "samples" / "epoch_002_samples.png").read_bytes()


def test_resume_continues_from_the_saved_step(eye_folder, tmp_path):
    out = tmp_path / "run"
    assert run(eye_folder, out, "--epochs", "3", "--max-steps", "4", "--map-size", "20") == 0
    assert torch.load(out / CHECKPOINT_FILE, weights_only=True)["step"] == 4
    assert run(eye_folder, out, "--epochs", "3", "--resume", "--map-size", "20") == 0
    assert torch.load(out / CHECKPOINT_FILE, weights_only=True)["step"] == 9
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 4, 6, 9]  # epoch 2 was split by the stop at step 4


def test_resume_equals_an_uninterrupted_run(eye_folder, tmp_path):
    """With the state term on: the slider's running direction is restored too."""
    flags = ("--map-size", "20", "--state-weight", "1")
    assert run(eye_folder, tmp_path / "straight", "--epochs", "2", *flags) == 0
    assert run(eye_folder, tmp_path / "split", "--epochs", "2", "--max-steps", "2", *flags) == 0
    assert run(eye_folder, tmp_path / "split", "--epochs", "2", "--resume", *flags) == 0
    straight = torch.load(tmp_path / "straight" / CHECKPOINT_FILE, weights_only=True)["model"]
    split = torch.load(tmp_path / "split" / CHECKPOINT_FILE, weights_only=True)["model"]
    for name in straight:
        torch.testing.assert_close(straight[name], split[name], rtol=1e-4, atol=1e-5, msg=name)


def test_resume_with_other_settings_is_refused(eye_folder, tmp_path, caplog):
    out = tmp_path / "run"
    assert run(eye_folder, out, "--epochs", "1", "--max-steps", "1") == 0
    assert run(eye_folder, out, "--epochs", "2", "--resume", "--latent-dim", "16") == 1
    assert "checkpoint was made with model_config" in caplog.text


def test_resume_without_a_checkpoint_is_refused(eye_folder, tmp_path, caplog):
    assert run(eye_folder, tmp_path / "empty", "--epochs", "1", "--resume") == 1
    assert "no checkpoint" in caplog.text


def test_a_pickle_checkpoint_is_not_unpickled(eye_folder, tmp_path, caplog):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    marker = tmp_path / "PWNED"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"step": Exploit()}, out / CHECKPOINT_FILE)
    assert run(eye_folder, out, "--epochs", "1", "--resume") == 1
    assert not marker.exists()
    assert "not a readable checkpoint" in caplog.text


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(eye_folder, tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    assert run(eye_folder, out, "--epochs", "1") == 0
    before = (out / CHECKPOINT_FILE).read_bytes()
    monkeypatch.setattr(losses, "pixel_reconstruction", lambda x_rec, x: (x_rec - x).sum() * float("nan"))
    assert run(eye_folder, out, "--epochs", "3", "--resume", "--log-every", "1") == 1
    assert "non-finite loss" in caplog.text
    assert (out / CHECKPOINT_FILE).read_bytes() == before


def test_interrupt_saves_a_checkpoint_to_resume_from(eye_folder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = Trainer.train_step

    def interrupted(self, x, labels=None):
        if self.step == 2:
            raise KeyboardInterrupt
        return original(self, x, labels)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    assert run(eye_folder, out, "--epochs", "1") == 130
    assert torch.load(out / CHECKPOINT_FILE, weights_only=True)["step"] == 2
    monkeypatch.setattr(Trainer, "train_step", original)
    assert run(eye_folder, out, "--epochs", "1", "--resume", "--map-size", "20") == 0
    assert torch.load(out / CHECKPOINT_FILE, weights_only=True)["step"] == 3


def test_unwritable_out_dir_fails_before_training(eye_folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit, match="not writable"):
        run(eye_folder, blocker / "run", "--epochs", "1")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch-size", "0"], "batch_size must be at least 1"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--max-steps", "0"], "max_steps must be at least 1"),
        (["--log-every", "0"], "log_every must be at least 1"),
        (["--map-size", "3"], "map_size must be at least 10"),
        (["--lr", "-1"], "lr must be a finite number of at least 0"),
        (["--kl-weight", "nan"], "kl_weight must be a finite number"),
        (["--beta2", "1"], r"beta2 must be in \[0, 1\)"),
        (["--val-fraction", "0.6", "--test-fraction", "0.4"], "leave a train split"),
        (["--device", "tpu"], "device must be one of auto, cpu, cuda"),
        (["--mixed-precision", "fp16"], "mixed_precision must be one of auto, no, bf16"),
        (["--discriminator-norm", "batch"], "discriminator_norm must be one of spectral, group"),
        (["--r1-weight", "-1"], "r1_weight must be a finite number of at least 0"),
        (["--discriminator-state-weight", "-1"], "discriminator_state_weight must be a finite number of at least 0"),
        (["--discriminator-warmup-steps", "-1"], "discriminator_warmup_steps must be at least 0"),
        (["--label-augment", "--label-weight", "0"], "--label-weight 0 turns that term off"),
    ],
)
def test_impossible_settings_are_refused_before_anything_is_written(eye_folder, tmp_path, caplog, flags, message):
    out = tmp_path / "run"
    assert run(eye_folder, out, *flags) == 1
    assert re.search(message, caplog.text)
    assert not out.exists()


def test_bad_data_dir_exits_with_a_message_and_leaves_no_empty_run_folder(tmp_path, caplog):
    assert train.main(["--data-dir", str(tmp_path / "missing"), "--out-dir", str(tmp_path / "runs" / "o"), *TINY]) == 1
    assert "no such folder" in caplog.text
    assert not (tmp_path / "runs").exists()  # the folders the run created are gone again
    kept = tmp_path / "mine"
    (kept / "notes.txt").parent.mkdir()
    (kept / "notes.txt").write_text("keep me")
    assert train.main(["--data-dir", str(tmp_path / "missing"), "--out-dir", str(kept), *TINY]) == 1
    assert (kept / "notes.txt").read_text() == "keep me"  # a folder that was there stays, with what it held


def test_without_data_dir_the_kaggle_dataset_is_downloaded(eye_folder, tmp_path, monkeypatch):
    import kagglehub

    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle: str(eye_folder))
    assert train.main(["--out-dir", str(tmp_path / "run"), *TINY, "--max-steps", "1", "--map-size", "20"]) == 0
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()


def _one_step(eye_folder, with_labels=False, **weights):
    torch.manual_seed(0)
    data = load_dataset(eye_folder, image_size=32)
    config = TrainConfig(out_dir="unused", batch_size=8, device="cpu", **({"warmup_epochs": 0} | weights))
    trainer = Trainer(config, ModelConfig(image_size=32, base_channels=8, latent_dim=8), data)
    before = {name: p.detach().clone() for name, p in trainer.discriminator.named_parameters()}
    torch.manual_seed(1)
    labels = trainer.labels[:8] if with_labels else None
    trainer.step_logs = trainer.train_step(trainer.batch(torch.arange(8)), labels)
    return trainer, before


def _gradients(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def test_gradient_routing(eye_folder):
    """After one step's backward passes: the GAN terms reach the decoder, never the encoder; the VAE loss never reaches D."""
    quiet, _ = _one_step(eye_folder, gan_weight=0.0, feature_weight=0.0)
    loud, _ = _one_step(eye_folder, gan_weight=100.0, feature_weight=100.0)
    rec_gan, _ = _one_step(eye_folder, gan_weight=100.0, feature_weight=0.0)
    no_rec_gan, _ = _one_step(eye_folder, gan_weight=100.0, feature_weight=0.0, gan_reconstructions=False)
    # the same step (same seeds) with other VAE-side weights: D's gradients are those of the discriminator loss alone
    d_quiet, d_loud = _gradients(quiet.discriminator), _gradients(loud.discriminator)
    assert d_quiet.keys() == d_loud.keys() and d_quiet
    for name in d_quiet:
        torch.testing.assert_close(d_quiet[name], d_loud[name], rtol=0, atol=0, msg=name)
    # the encoder's gradient is the same with or without the GAN term on reconstructions: the encoder never sees it
    # (up to bf16 rounding: the term's share is subtracted at z; exact in fp32; letting it through moves these by 3x the tolerance)
    e_rec, e_no_rec = _gradients(rec_gan.model.encoder), _gradients(no_rec_gan.model.encoder)
    for name in e_rec:
        assert (e_rec[name] - e_no_rec[name]).abs().max() <= 0.04 * e_no_rec[name].abs().max(), name
    # ... while the decoder's gradient changes with it, and with the GAN weight
    dec = [_gradients(t.model.decoder) for t in (quiet, rec_gan, no_rec_gan)]
    assert any(not torch.allclose(dec[1][n], dec[2][n], rtol=0.05) for n in dec[1])
    assert any(not torch.allclose(dec[0][n], dec[1][n], rtol=0.05) for n in dec[0])


def test_state_term_teaches_d_the_labels_and_the_decoder_latent_unit_0(eye_folder):
    """AC-GAN term: D's state head learns from real labels; the decoder (never the encoder) learns to show unit 0's state."""
    off, _ = _one_step(eye_folder, with_labels=True, state_weight=0.0)
    on, _ = _one_step(eye_folder, with_labels=True, state_weight=100.0)
    assert "state_gen" in on.step_logs and "state_disc" in on.step_logs and "state_gen" not in off.step_logs
    for name, grad in _gradients(off.model.encoder).items():  # prior samples do not come from the encoder
        torch.testing.assert_close(grad, _gradients(on.model.encoder)[name], rtol=0, atol=0, msg=name)
    dec_off, dec_on = _gradients(off.model.decoder), _gradients(on.model.decoder)
    assert any(not torch.allclose(dec_off[n], dec_on[n], rtol=0.05) for n in dec_off)
    d_off, d_on = _gradients(off.discriminator), _gradients(on.discriminator)
    assert any(not torch.allclose(d_off[n], d_on[n], rtol=0.05) for n in d_off)
    # D's state term is on real eyes only: the same D gradients whatever the decoder-side weights
    quiet, _ = _one_step(eye_folder, with_labels=True, state_weight=100.0, gan_weight=0.0, feature_weight=0.0, label_weight=0.0)
    for name, grad in _gradients(quiet.discriminator).items():
        torch.testing.assert_close(grad, d_on[name], rtol=0, atol=0, msg=name)


def test_discriminator_state_weight_scales_only_ds_own_state_loss(eye_folder):
    """--discriminator-state-weight: D's open / closed loss gets its own weight; the decoder's state term keeps --state-weight."""
    same, _ = _one_step(eye_folder, with_labels=True, state_weight=100.0)
    explicit, _ = _one_step(eye_folder, with_labels=True, state_weight=100.0, discriminator_state_weight=100.0)
    light, _ = _one_step(eye_folder, with_labels=True, state_weight=100.0, discriminator_state_weight=0.0)
    plain_head, _ = _one_step(eye_folder, with_labels=True, state_weight=100.0, discriminator_state_weight=0.0, discriminator_norm="group")
    for name, grad in _gradients(same.discriminator).items():  # unset: the state weight, as before
        torch.testing.assert_close(grad, _gradients(explicit.discriminator)[name], rtol=0, atol=0, msg=name)
    d_same, d_light = _gradients(same.discriminator), _gradients(light.discriminator)
    assert any(not torch.allclose(d_same[n], d_light[n], rtol=0.05) for n in d_same)
    # at 0, D's state output learns nothing (its row of the head, plain weights under GroupNorm), its real / fake output does
    head = plain_head.discriminator.head
    assert not head.weight.grad[1].any() and not head.bias.grad[1].any()
    assert head.weight.grad[0].abs().sum() > 0
    for module in ("encoder", "decoder"):  # the model's gradients do not depend on D's own state weight
        for name, grad in _gradients(getattr(same.model, module)).items():
            torch.testing.assert_close(grad, _gradients(getattr(light.model, module))[name], rtol=0, atol=0, msg=f"{module}.{name}")


def test_state_term_edits_move_along_the_class_mean_difference(eye_folder):
    """The first batch sets the slider's running direction: mean(mu | open) - mean(mu | closed) of the encoder it trained."""
    torch.manual_seed(0)
    config = TrainConfig(out_dir="unused", batch_size=8, device="cpu", warmup_epochs=0, state_weight=1.0)
    trainer = Trainer(config, ModelConfig(image_size=32, base_channels=8, latent_dim=8), load_dataset(eye_folder, image_size=32))
    index = torch.cat([(trainer.labels == 0).nonzero()[:4, 0], (trainer.labels == 1).nonzero()[:4, 0]])  # both states
    x, labels = trainer.batch(index), trainer.labels[index]
    with torch.no_grad(), trainer.accelerator.autocast():  # the precision train_step runs in
        mu, _ = trainer.model.encode(x)
    mu = mu.float()
    trainer.train_step(x, labels)
    expected = mu[labels == 1].mean(0) - mu[labels == 0].mean(0)
    torch.testing.assert_close(trainer.open_direction, expected)
    # later batches move it a little (a running mean), a batch of one state not at all
    before = trainer.open_direction.clone()
    trainer.slider_edit(mu, mu, torch.ones(8, dtype=labels.dtype))
    torch.testing.assert_close(trainer.open_direction, before, rtol=0, atol=0)
    trainer.slider_edit(mu + torch.randn_like(mu), mu, labels)
    assert 0 < (trainer.open_direction - before).abs().max() < 0.1 * before.abs().max() + 0.2


def test_warmup_trains_a_plain_vae_first(eye_folder):
    """During the warm-up the discriminator's terms give the VAE no gradient at all, and are not logged as if training."""
    warm, _ = _one_step(eye_folder, warmup_epochs=5.0, gan_weight=100.0)
    plain, _ = _one_step(eye_folder, warmup_epochs=5.0, gan_weight=0.0, feature_weight=0.0)
    for name, grad in _gradients(warm.model).items():
        torch.testing.assert_close(grad, _gradients(plain.model)[name], rtol=0, atol=0, msg=name)
    assert "gan" not in warm.step_logs and "feature" not in warm.step_logs
    assert warm.discriminator.blocks[0][0].parametrizations.weight.original.grad is not None  # D itself learns during the warm-up


def test_augment_changes_the_training_batches_only_when_asked(eye_folder):
    plain, _ = _one_step(eye_folder)
    augmented, _ = _one_step(eye_folder, augment=True)
    index = torch.arange(8)
    torch.manual_seed(2)
    x = plain.batch(index)
    torch.manual_seed(2)
    assert torch.equal(plain.batch(index), x)
    torch.manual_seed(2)
    y = augmented.batch(index)
    assert y.shape == x.shape and not torch.allclose(y, x, atol=0.01)


def test_label_augment_reads_the_state_from_an_augmented_copy_as_well(eye_folder, monkeypatch, fp32_accelerator):
    fp32 = {"mixed_precision": "no"}  # bf16 would round the two ways of summing the same gradient apart
    plain, _ = _one_step(eye_folder, with_labels=True, **fp32)
    augmented, _ = _one_step(eye_folder, with_labels=True, label_augment=True, **fp32)
    # the reconstructions still train on the eyes as they are; only the label term reads the augmented copies
    for name in ("pixel", "kl", "feature"):
        torch.testing.assert_close(augmented.step_logs[name], plain.step_logs[name], msg=name)
    assert not torch.allclose(augmented.step_logs["label"], plain.step_logs["label"])
    # with copies equal to the eyes, the term is the plain one: the mean of the two readings
    monkeypatch.setattr("vaegan.trainer.augment", lambda x: x.clone())
    identity, _ = _one_step(eye_folder, with_labels=True, label_augment=True, **fp32)
    torch.testing.assert_close(identity.step_logs["label"], plain.step_logs["label"])
    for name, grad in _gradients(identity.model.encoder).items():
        torch.testing.assert_close(grad, _gradients(plain.model.encoder)[name])


def test_ema_weights_trail_the_trained_ones_and_are_what_is_exported(eye_folder, tmp_path):
    torch.manual_seed(0)
    data = load_dataset(eye_folder, image_size=32)
    config = TrainConfig(out_dir=str(tmp_path / "run"), batch_size=8, device="cpu", epochs=3, ema_decay=0.9, map_size=20)
    trainer = Trainer(config, ModelConfig(image_size=32, base_channels=8, latent_dim=8), data)
    write_model_dir(trainer.fit(), data, tmp_path / "run" / "model", map_size=20)
    trained = dict(trainer.model.named_parameters())
    moved = [not torch.equal(p, trained[name]) for name, p in trainer.ema.named_parameters()]
    assert all(moved)  # an average of past weights, not a copy of the last ones
    exported = VAEGAN.from_pretrained(tmp_path / "run" / "model", strict=True)
    for name, p in exported.named_parameters():
        torch.testing.assert_close(p, dict(trainer.ema.named_parameters())[name])
    off = Trainer(TrainConfig(out_dir=str(tmp_path / "off"), batch_size=8, device="cpu", ema_decay=0.0), trainer.model_config, data)
    assert off.ema is None and off.inference_model() is off.model


def test_sigkill_mid_run_then_resume_finishes(eye_folder, tmp_path):
    """A run killed with SIGKILL (no chance to clean up) resumes from its last complete checkpoint."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "run"
    epochs = 100  # about 45 ms each: the kill lands seconds before the run could end on its own
    root = Path(__file__).resolve().parents[1]
    argv = [sys.executable, str(root / "train.py"), "--data-dir", str(eye_folder), "--out-dir", str(out), *TINY, "--epochs", str(epochs), "--sample-every", "50"]
    process = subprocess.Popen(argv, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + 120
        while not (out / CHECKPOINT_FILE).exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # somewhere in a later epoch, perhaps mid-write
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    (out / "checkpoint" / "state.tmp").write_bytes(b"half a checkpoint")  # as a kill mid-write leaves it
    step = torch.load(out / CHECKPOINT_FILE, weights_only=True)["step"]
    assert 0 < step < epochs * 3
    assert run(eye_folder, out, "--epochs", str(epochs), "--sample-every", "50", "--resume", "--map-size", "20") == 0
    assert torch.load(out / CHECKPOINT_FILE, weights_only=True)["step"] == epochs * 3
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == epochs * 3  # no duplicated or lost epoch lines


def test_a_full_disk_is_reported_before_training(eye_folder, tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(SystemExit, match="No space left on device"):
        run(eye_folder, tmp_path / "run", "--epochs", "1")
    assert not (tmp_path / "run" / CHECKPOINT_FILE).exists()


def test_compile_trains_and_saves_plain_weights(eye_folder, tmp_path):
    """--compile through the whole adversarial step (no VAE-only warm-up), the GAN term on reconstructions included."""
    out = tmp_path / "run"
    assert run(eye_folder, out, "--epochs", "1", "--max-steps", "2", "--compile", "--warmup-epochs", "0", "--map-size", "20") == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"gan", "gan_rec", "feature", "disc"} <= record.keys() and all(math.isfinite(v) for v in record.values() if isinstance(v, float))
    state = torch.load(out / CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == 2 and not any("_orig_mod" in name for name in state["model"])
    VAEGAN.from_pretrained(out / "model", strict=True)


def test_two_processes_share_the_epoch(eye_folder, tmp_path):
    """The `accelerate launch` path, on CPU: two processes (gloo) split each epoch's batches; one writes the outputs."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(root / "train.py"),
               "--data-dir", str(eye_folder), "--out-dir", str(out), *TINY, "--batch-size", "4", "--epochs", "2", "--map-size", "20"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    state = torch.load(out / CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == 2 * (24 // (4 * 2)) and state["processes"] == 2
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert (out / "model" / "latent_map.safetensors").exists()


def test_label_weight_lays_the_eye_state_along_latent_unit_zero(eye_folder):
    """With --label-weight, a few steps make unit 0 of mu read open / closed on the training eyes; without, it does not."""

    def unit_zero_accuracy(label_weight: float) -> float:
        torch.manual_seed(0)
        data = load_dataset(eye_folder, image_size=32)
        config = TrainConfig(out_dir="unused", batch_size=8, device="cpu", label_weight=label_weight, lr=2e-3, ema_decay=0.0)
        trainer = Trainer(config, ModelConfig(image_size=32, base_channels=8, latent_dim=8), data)
        for step in range(30):
            index = torch.randperm(len(trainer.train_data))[:8]
            logs = trainer.train_step(trainer.batch(index), trainer.labels[index])
        assert ("label" in logs) == (label_weight > 0)
        with torch.no_grad():
            mu = trainer.model.eval().encode(to_float(trainer.train_data.images))[0]
        return ((mu[:, 0] > 0).long() == trainer.train_data.labels).float().mean().item()

    assert unit_zero_accuracy(10.0) >= 0.9
    assert unit_zero_accuracy(0.0) < 0.9


def test_every_flag_has_help_with_its_default(capsys):
    """--help is made from the config dataclasses: each field a flag, with its comment and default, so they can't drift."""
    from dataclasses import fields

    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # unwrap argparse's line breaks
    for config_class in (TrainConfig, ModelConfig):
        comments = train.field_comments(config_class)
        for field in fields(config_class):
            assert field.name in comments or field.name in train.HELP, f"{field.name} has no help text"
            assert f"--{field.name.replace('_', '-')}" in text
    assert "passes over the training split (default: 20)" in text
    assert "(default: 0.3)" in text  # --kl-weight
    config, model_config, _ = train.parse_args(["--max-steps", "5", "--no-hflip", "--kl-weight", "0.5"])
    assert (config.max_steps, config.hflip, config.kl_weight, model_config.latent_dim) == (5, False, 0.5, 64)


def test_init_from_starts_from_a_model_dirs_weights_and_refuses_another_architecture(eye_folder, tmp_path, caplog):
    data = load_dataset(eye_folder, image_size=32)
    model_config = ModelConfig(image_size=32, base_channels=8, latent_dim=8)
    source = VAEGAN(model_config)
    source.save_pretrained(tmp_path / "pretrained")
    config = TrainConfig(out_dir=str(tmp_path / "run"), batch_size=8, device="cpu", init_from=str(tmp_path / "pretrained"))
    trainer = Trainer(config, model_config, data)
    for name, p in trainer.model.named_parameters():
        torch.testing.assert_close(p, dict(source.named_parameters())[name], msg=name)
    fresh = Trainer(TrainConfig(out_dir=str(tmp_path / "fresh"), batch_size=8, device="cpu", seed=1), model_config, data)
    assert not torch.equal(fresh.model.decoder.project.weight, source.decoder.project.weight)
    # another architecture: one line naming the flags to add, before anything is written
    assert run(eye_folder, tmp_path / "wide", "--init-from", str(tmp_path / "pretrained"), "--latent-dim", "16") == 1
    assert "--latent-dim 8" in caplog.text and not (tmp_path / "wide" / "checkpoint").exists()
    assert run(eye_folder, tmp_path / "none", "--init-from", str(tmp_path / "missing")) == 1
    assert "not a model dir" in caplog.text


def test_init_from_a_runs_model_starts_d_from_the_trained_one_without_a_warm_up(eye_folder, tmp_path, caplog):
    """Fine-tuning a model dir: the discriminator comes from the one saved in it (else the run's checkpoint), no VAE-only epoch runs."""
    source = tmp_path / "source"
    assert run(eye_folder, source, "--epochs", "1", "--map-size", "20") == 0
    trained_d = torch.load(source / CHECKPOINT_FILE, weights_only=True)["discriminator"]
    saved = load_file(source / "model" / DISCRIMINATOR_FILE)  # the model dir carries the trained D
    assert saved.keys() == trained_d.keys() and all(torch.equal(saved[name], value) for name, value in trained_d.items())
    data = load_dataset(eye_folder, image_size=32)
    model_config = ModelConfig(image_size=32, base_channels=8, latent_dim=8)

    def discriminator_from(model_dir: Path) -> dict[str, torch.Tensor]:
        config = TrainConfig(out_dir=str(tmp_path / "ft"), batch_size=8, device="cpu", init_from=str(model_dir))
        trainer = Trainer(config, model_config, data)
        assert trainer.warmup_steps == 0
        return trainer.discriminator.state_dict()

    moved = shutil.copytree(source / "model", tmp_path / "elsewhere" / "model")  # no checkpoint beside it: a download, say
    checkpoint_only = shutil.copytree(source / "model", tmp_path / "only" / "model", ignore=shutil.ignore_patterns(DISCRIMINATOR_FILE))
    shutil.copytree(source / "checkpoint", tmp_path / "only" / "checkpoint")
    for model_dir in (source / "model", moved, checkpoint_only):
        ours = discriminator_from(model_dir)
        for name, value in trained_d.items():
            torch.testing.assert_close(ours[name], value, msg=f"{model_dir}: {name}")
    assert Trainer(TrainConfig(out_dir=str(tmp_path / "scratch"), batch_size=8, device="cpu"), model_config, data).warmup_steps > 0
    # a damaged checkpoint or D file is refused with one line, before anything is written; a pickle is never opened
    (checkpoint_only.parent / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    (moved / DISCRIMINATOR_FILE).write_bytes(pickle.dumps({"blocks.0.0.bias": torch.zeros(8)}))
    for model_dir in (checkpoint_only, moved):
        caplog.clear()
        assert run(eye_folder, tmp_path / "bad", "--init-from", str(model_dir)) == 1
        assert "could not load the discriminator" in caplog.text and not (tmp_path / "bad" / "checkpoint").exists()
    # --resume takes every weight from its checkpoint: the --init-from dir is not read, damaged or not
    assert run(eye_folder, source, "--epochs", "2", "--map-size", "20", "--resume", "--init-from", str(moved)) == 0


def test_r1_penalises_d_every_fourth_step_with_the_group_norm_discriminator(eye_folder):
    """--discriminator-norm group --r1-weight: D's loss gains R1 on steps 0, 4, 8...; with R1 off nothing changes."""
    trainer, before = _one_step(eye_folder, discriminator_norm="group", r1_weight=10.0)
    plain, _ = _one_step(eye_folder, discriminator_norm="group")
    assert "r1" in trainer.step_logs and trainer.step_logs["r1"] > 0 and "r1" not in plain.step_logs
    assert not any("parametrizations" in name for name in trainer.discriminator.state_dict())
    # the penalty is part of D's gradient: the same step (same seeds) with and without it, D's gradients differ
    with_r1, without = _gradients(trainer.discriminator), _gradients(plain.discriminator)
    assert with_r1.keys() == without.keys() and any(not torch.allclose(with_r1[n], without[n]) for n in with_r1)
    # ... and the model's do not: R1 trains D only
    for name, grad in _gradients(plain.model).items():
        torch.testing.assert_close(_gradients(trainer.model)[name], grad, msg=name)
    trainer.step_logs = trainer.train_step(trainer.batch(torch.arange(8)))  # step 1: no penalty
    assert "r1" not in trainer.step_logs


def test_init_from_with_another_discriminator_starts_it_afresh_and_lets_it_learn_alone_first(eye_folder, tmp_path, caplog):
    """A spectral-norm model fine-tuned with --discriminator-norm group: a warning and a fresh D; --discriminator-warmup-steps: D alone first."""
    source = tmp_path / "source"
    assert run(eye_folder, source, "--max-steps", "2", "--map-size", "20") == 0
    data = load_dataset(eye_folder, image_size=32)
    model_config = ModelConfig(image_size=32, base_channels=8, latent_dim=8)
    config = TrainConfig(out_dir=str(tmp_path / "ft"), batch_size=8, device="cpu", init_from=str(source / "model"),
                         discriminator_norm="group", r1_weight=1.0, discriminator_warmup_steps=5)
    trainer = Trainer(config, model_config, data)
    assert "of another kind (add --discriminator-norm spectral" in caplog.text
    model_before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    d_before = {name: p.detach().clone() for name, p in trainer.discriminator.named_parameters()}
    for _ in range(2):
        trainer.train_step(trainer.batch(torch.arange(8)))
    assert all(torch.equal(p, model_before[name]) for name, p in trainer.model.named_parameters())  # the model waits...
    assert any(not torch.equal(p, d_before[name]) for name, p in trainer.discriminator.named_parameters())  # ...while D learns
    # the same kind of D loads as before; without D-only steps the model moves from the first step
    same = Trainer(TrainConfig(out_dir=str(tmp_path / "same"), batch_size=8, device="cpu", init_from=str(source / "model")), model_config, data)
    saved = load_file(source / "model" / DISCRIMINATOR_FILE)
    assert all(torch.equal(value, saved[name]) for name, value in same.discriminator.state_dict().items())
    config.discriminator_warmup_steps = 0
    moving = Trainer(config, model_config, data)
    moving.train_step(moving.batch(torch.arange(8)))
    assert any(not torch.equal(p, model_before[name]) for name, p in moving.model.named_parameters())


def test_encoder_only_refits_the_encoder_and_keeps_the_decoder_d_and_prior_samples(eye_folder, tmp_path, caplog):
    """--encoder-only: the encoder learns; the decoder and D keep the --init-from model's weights bit for bit, so prior samples are unchanged."""
    source = tmp_path / "source"
    assert run(eye_folder, source, "--max-steps", "2", "--map-size", "20") == 0
    refit = tmp_path / "refit"
    assert run(eye_folder, refit, "--epochs", "2", "--map-size", "20", "--init-from", str(source / "model"), "--encoder-only",
               "--label-weight", "30") == 0
    before, after = VAEGAN.from_pretrained(source / "model"), VAEGAN.from_pretrained(refit / "model")
    for name, value in before.decoder.state_dict().items():
        assert torch.equal(after.decoder.state_dict()[name], value), name
    assert any(not torch.equal(after.encoder.state_dict()[name], value) for name, value in before.encoder.state_dict().items())
    d_before, d_after = load_file(source / "model" / DISCRIMINATOR_FILE), load_file(refit / "model" / DISCRIMINATOR_FILE)
    assert d_after.keys() == d_before.keys() and all(torch.equal(d_after[name], value) for name, value in d_before.items())
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(after.decode(z), before.decode(z), rtol=0, atol=0)
    # an interrupted refit resumes only as a refit: the checkpoint records the flag
    caplog.clear()
    assert run(eye_folder, refit, "--epochs", "3", "--map-size", "20", "--resume") == 1
    assert "encoder_only=True, this run has False" in caplog.text
    assert run(eye_folder, refit, "--epochs", "3", "--map-size", "20", "--resume", "--encoder-only") == 0


def test_encoder_only_steps_make_no_generated_images(eye_folder, tmp_path):
    """Under --encoder-only nothing generated can teach the encoder: the decoder draws only the reconstructions, D sees only
    real eyes and reconstructions, and only the terms that reach the encoder are computed; a full step draws all three."""
    source = tmp_path / "source"
    assert run(eye_folder, source, "--max-steps", "2", "--map-size", "20") == 0
    data = load_dataset(eye_folder, image_size=32)
    model_config = ModelConfig(image_size=32, base_channels=8, latent_dim=8)
    rows = {}
    for encoder_only in (True, False):
        config = TrainConfig(out_dir=str(tmp_path / f"t{encoder_only}"), batch_size=8, device="cpu", init_from=str(source / "model"),
                             encoder_only=encoder_only, state_weight=10, label_weight=2)
        trainer = Trainer(config, model_config, data)
        seen = rows[encoder_only] = {"decoder": 0, "discriminator": 0}
        for name, module in (("decoder", trainer.accelerator.unwrap_model(trainer.model).decoder),
                             ("discriminator", trainer.accelerator.unwrap_model(trainer.discriminator))):
            module.register_forward_hook(lambda _m, inputs, _o, name=name: seen.__setitem__(name, seen[name] + len(inputs[0])))
        logs = trainer.train_step(trainer.batch(torch.arange(8)), torch.tensor([0, 1] * 4))
        if encoder_only:
            assert logs.keys() == {"pixel", "kl", "label", "d_real", "d_rec", "feature"}
    assert rows[True] == {"decoder": 8, "discriminator": 16}  # reconstructions; real eyes + reconstructions
    assert rows[False] == {"decoder": 8 + 16, "discriminator": 16 + 16}  # + prior samples and slider-moved reconstructions


def test_encoder_only_without_a_model_to_refit_or_its_discriminator_is_refused(eye_folder, tmp_path, caplog):
    assert run(eye_folder, tmp_path / "run", "--encoder-only") == 1
    assert "give the model dir to refit with --init-from" in caplog.text and not (tmp_path / "run").exists()
    # a model dir with no discriminator in it and no checkpoint beside it: a frozen fresh D would judge nothing
    source = tmp_path / "source"
    assert run(eye_folder, source, "--max-steps", "2", "--map-size", "20") == 0
    bare = shutil.copytree(source / "model", tmp_path / "bare" / "model", ignore=shutil.ignore_patterns(DISCRIMINATOR_FILE))
    caplog.clear()
    assert run(eye_folder, tmp_path / "refit", "--init-from", str(bare), "--encoder-only") == 1
    assert "refits the encoder against that model's trained discriminator, and none could be loaded" in caplog.text
    assert not (tmp_path / "refit").exists()
