"""vaegan.pipeline on its own: the model dir of a model that no Trainer made."""

import json
import logging

import torch
from conftest import tiny_model
from safetensors.torch import load_file

from vaegan import VAEGAN
from vaegan.data import load_dataset
from vaegan.latent_map import LatentMap, encode_images
from vaegan.networks import DISCRIMINATOR_FILE, Discriminator
from vaegan.pipeline import write_model_dir


def test_write_model_dir_of_an_untrained_model(eye_folder, tmp_path):
    model, data = tiny_model(), load_dataset(eye_folder)  # 64x64 grayscale: the bundled eye-feature CNN scores it
    training = {"data_dir": str(eye_folder), "command": "python train.py --epochs 3", "images": len(data), "steps": 9}
    out = write_model_dir(model, data, tmp_path / "model", map_size=20, seed=0, training=training, logged={"epoch": 3, "val_mse": 0.125})
    assert out == tmp_path / "model"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["interpolation.png", "latent_map.png", "reconstructions.png", "samples.png"]
    loaded = VAEGAN.from_pretrained(out, strict=True)
    torch.testing.assert_close(loaded.decode(torch.ones(2, 8)), model.decode(torch.ones(2, 8)))
    # the map: 20 of the 24 training eyes, the same latents the model gives them
    latent_map = LatentMap.load(out)
    mu_train = encode_images(model, data.subset("train").images)
    assert len(latent_map) == 20 and ((latent_map.mu[:, None] - mu_train[None]) ** 2).sum(-1).min(1).max() < 1e-8
    # metrics: the training log's line, and the evaluation suite on every held-out eye (8 val + 6 test)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == 3 and metrics["val_mse"] == 0.125 and metrics["eval_images"] == 14
    assert {"recon_ssim", "frechet_distance", "probe_accuracy", "knn_accuracy"} <= set(metrics)
    card = (out / "README.md").read_text()
    assert "python train.py --epochs 3" in card and f"`{eye_folder}`" in card and "| held-out reconstruction MSE (training log) | 0.125 |" in card
    assert "On the 14 eyes of the validation and test splits" in card
    assert not (out / DISCRIMINATOR_FILE).exists()  # none given: a plain VAE's dir


def test_the_discriminator_is_saved_beside_the_model_and_only_where_there_is_one(eye_folder, tmp_path):
    model, data = tiny_model(), load_dataset(eye_folder)
    discriminator = Discriminator(model.config).state_dict()
    out = write_model_dir(model, data, tmp_path / "model", map_size=20, discriminator=discriminator)
    saved = load_file(out / DISCRIMINATOR_FILE)
    assert saved.keys() == discriminator.keys() and all(torch.equal(saved[k], v) for k, v in discriminator.items())
    write_model_dir(model, data, out, map_size=20)  # a plain VAE written over it: the old D goes
    assert not (out / DISCRIMINATOR_FILE).exists() and DISCRIMINATOR_FILE not in (out / "README.md").read_text()


def test_without_a_feature_file_the_model_dir_has_the_training_log_only(eye_folder, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = write_model_dir(tiny_model(), load_dataset(eye_folder), tmp_path / "model", map_size=20,
                          logged={"val_mse": 0.25}, features=tmp_path / "missing.safetensors")
    assert json.loads((out / "metrics.json").read_text()) == {"val_mse": 0.25}
    assert "no evaluation suite for the model card" in caplog.text and "fit-features" in caplog.text
    assert (out / "README.md").exists() and (out / "latent_map.safetensors").exists()


def test_a_large_held_out_split_is_scored_on_a_seeded_sample(eye_folder, tmp_path, monkeypatch):
    """The card's evaluation is capped (the Kaggle set holds 35,000 held-out eyes), and the card says so."""
    monkeypatch.setattr("vaegan.pipeline.EVAL_IMAGES", 10)
    out = write_model_dir(tiny_model(), load_dataset(eye_folder), tmp_path / "model", map_size=20)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_images"] == 10 and metrics["held_out_images"] == 14
    assert "On a seeded sample of 10 of the 14 eyes of the validation and test splits" in (out / "README.md").read_text()
