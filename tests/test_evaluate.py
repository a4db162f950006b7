"""Tests of vaegan.evaluate: every metric on cases with a known answer, the feature file, the CLI.

Fixtures are synthetic 16x16 "eyes" drawn here: an open eye is a dark disc (iris) on grey
skin, a closed eye a dark horizontal line. No real data, no network.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from vaegan import eye_features
from vaegan.config import ModelConfig
from vaegan.data import EyeData, to_float
from vaegan.evaluate import evaluate, main, map_coordinates, sample_index, select_split, source_index
from vaegan.eye_features import (
    FEATURE_FORMAT,
    EyeFeatureNet,
    FeatureConfig,
    feature_accuracy,
    feature_file_info,
    fit_feature_network,
    load_feature_network,
    save_feature_network,
)
from vaegan.latent_map import LatentMap
from vaegan.metrics import knn_accuracy_2d
from vaegan.networks import VAEGAN

SIZE = 16


def draw_eyes(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """uint8 (N, 1, SIZE, SIZE): label 1 = dark disc (open), label 0 = dark horizontal line (closed), jittered and noisy."""
    generator = torch.Generator().manual_seed(seed)
    n = len(labels)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    shift = torch.randint(-1, 2, (n, 2), generator=generator).float()
    cy, cx = SIZE / 2 - 0.5 + shift[:, 0, None, None], SIZE / 2 - 0.5 + shift[:, 1, None, None]
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < (SIZE / 4) ** 2
    line = ((yy - cy).abs() < 1.0) & ((xx - cx).abs() < SIZE / 2.5)
    dark = torch.where(labels.bool()[:, None, None], disc, line)
    skin = 0.65 + 0.1 * torch.rand(n, 1, 1, generator=generator)
    image = torch.where(dark, torch.full_like(skin, 0.15), skin) + 0.04 * torch.randn(n, SIZE, SIZE, generator=generator)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)[:, None]


def make_data(n: int = 160, seed: int = 0) -> EyeData:
    """Balanced synthetic set: 60 % train, 20 % val, 20 % test; labels alternate so every split is balanced."""
    labels = torch.arange(n) % 2
    splits = torch.zeros(n, dtype=torch.int8)
    splits[int(0.6 * n) : int(0.8 * n)] = 1
    splits[int(0.8 * n) :] = 2
    return EyeData(draw_eyes(labels, seed), labels, splits, [f"{i}.png" for i in range(n)])


class IdentityAutoencoder(nn.Module):
    """encode = the pixels themselves, decode = reshape back: a perfect reconstruction."""

    def __init__(self):
        super().__init__()
        self.config = ModelConfig(image_size=SIZE, channels=1, latent_dim=SIZE * SIZE)
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def encode(self, x):
        return x.flatten(1), torch.zeros_like(x.flatten(1))

    def decode(self, z):
        return z.view(-1, 1, SIZE, SIZE)

    def sample(self, n, generator=None):
        return self.decode(torch.randn(n, self.config.latent_dim, generator=generator).clamp(-1, 1))


class ConstantDecoder(IdentityAutoencoder):
    """Encodes like the identity, decodes every latent to the same flat grey image."""

    def decode(self, z):
        return torch.zeros(len(z), 1, SIZE, SIZE)


def pca_map(mu: np.ndarray, labels: np.ndarray) -> LatentMap:
    """A latent map whose 2-D coordinates are the first two principal components (no UMAP: fast)."""
    centred = mu - mu.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    z = mu.shape[1]
    zeros = np.zeros(z, np.float32)
    return LatentMap(mu.astype(np.float32), (centred @ vt[:2].T).astype(np.float32), labels.astype(np.int64), zeros, np.zeros(1, np.float32), zeros)


@pytest.fixture(scope="module")
def data() -> EyeData:
    return make_data()


@pytest.fixture(scope="module")
def features(data) -> EyeFeatureNet:
    """A tiny eye-state CNN fitted on the synthetic train split (a second or two)."""
    return fit_feature_network(data, epochs=12, batch_size=16, lr=3e-3, widths=[8, 16])


# ---------------------------------------------------------------------- the feature CNN
def test_feature_cnn_learns_the_synthetic_eye_state(data, features):
    assert features(to_float(data.images[:4])).shape == (4, 16)
    assert feature_accuracy(features, data.held_out()) >= 0.95


def test_feature_file_round_trips(tmp_path, features):
    path = save_feature_network(features, tmp_path / "f.safetensors", {"held_out_accuracy": 0.97})
    loaded = load_feature_network(path)
    x = to_float(make_data(8, seed=3).images)
    torch.testing.assert_close(loaded(x), features(x))
    assert loaded.config == features.config
    assert feature_file_info(path) == {"held_out_accuracy": 0.97}
    assert not any(p.requires_grad for p in loaded.parameters())


def _state(net):
    return {name: value.clone() for name, value in net.state_dict().items()}


def _header(net):
    return {"format": FEATURE_FORMAT, "version": "1", "config": json.dumps({"image_size": 16, "channels": 1, "widths": net.config.widths})}


@pytest.mark.parametrize(
    "damage, message",
    [
        ("pickle", "not a safetensors file"),
        ("garbage", "not a safetensors file"),
        ("no_header", "not a vaegan eye-feature file"),
        ("extra_tensor", "unexpected"),
        ("missing_tensor", "missing"),
        ("wrong_shape", "wrong shape"),
        ("nan", "not finite torch.float32"),
        ("float64", "not finite torch.float32"),
        ("bad_config", "config out of range"),
    ],
)
def test_malformed_feature_files_are_refused(tmp_path, features, damage, message):
    path = tmp_path / "bad.safetensors"
    tensors, header = _state(features), _header(features)
    if damage == "pickle":
        torch.save(tensors, path)
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01not a file" * 10)
    else:
        if damage == "no_header":
            header = None
        elif damage == "extra_tensor":
            tensors["payload"] = torch.zeros(3)
        elif damage == "missing_tensor":
            tensors.pop("head.bias")
        elif damage == "wrong_shape":
            tensors["head.weight"] = torch.zeros(3, 16)
        elif damage == "nan":
            tensors["head.bias"] = torch.full((2,), math.nan)
        elif damage == "float64":
            tensors["head.bias"] = tensors["head.bias"].double()
        elif damage == "bad_config":
            header["config"] = json.dumps({"image_size": 16, "channels": 1, "widths": [10**6]})
        save_file(tensors, str(path), metadata=header)
    with pytest.raises(ValueError, match=message):
        load_feature_network(path)


def test_missing_feature_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="fit-features"):
        load_feature_network(tmp_path / "nope.safetensors")


# ---------------------------------------------------------------------- the 2-D map and the splits
def test_held_out_latents_in_the_map_do_not_vote_for_themselves():
    rng = np.random.default_rng(0)
    y_map = np.arange(200) % 2
    mu_map = rng.normal(size=(200, 4)) + 4.0 * y_map[:, None]
    xy_map = rng.normal(size=(200, 2)) + 10.0 * y_map[:, None]
    y_test = np.arange(40) % 2
    mu_test = rng.normal(size=(40, 4)) + 4.0 * y_test[:, None]
    # the map also holds the test latents themselves, far away and with the wrong labels
    latent_map = LatentMap(
        np.concatenate([mu_map, mu_test]).astype(np.float32),
        np.concatenate([xy_map, np.tile([0.0, 100.0], (40, 1))]).astype(np.float32),
        np.concatenate([y_map, 1 - y_test]),
        np.zeros(4, np.float32), np.zeros(1, np.float32), np.zeros(4, np.float32),
    )
    xy_ref, y_ref, xy_test = map_coordinates(mu_test.astype(np.float32), latent_map, np.zeros((0, 4)), np.zeros(0))
    assert len(y_ref) == 200
    assert knn_accuracy_2d(xy_ref, y_ref, xy_test, y_test) == 1.0


def test_select_split(data):
    assert len(select_split(data, "held-out")) == len(data.subset("test")) == 32
    assert len(select_split(data, "val+test")) == 64
    with pytest.raises(ValueError, match="split must be one of"):
        select_split(data, "everything")


def test_sources_are_top_level_folders_that_name_no_split_or_class():
    assert source_index(["cew/open/a.png", "eyestate/closed/b.png", "cew/closed/c.png"]).keys() == {"cew", "eyestate"}
    assert source_index(["cew/open/a.png", "eyestate/closed/b.png", "cew/closed/c.png"])["cew"].tolist() == [0, 2]
    assert source_index(["cew/open/a.png", "cew/closed/b.png"]) == {}  # one source
    assert source_index(["train/open/a.png", "test/closed/b.png"]) == {}  # split folders
    assert source_index(["Open_Eyes/a.png", "closedLeftEyes/b.png"]) == {}  # class folders
    assert source_index(["a.png", "cew/open/b.png"]) == {}  # a file at the top


class BlurringDecoder(IdentityAutoencoder):
    """Reconstructs every eye through a 3x3 box blur."""

    def decode(self, z):
        x = z.view(-1, 1, SIZE, SIZE)
        return nn.functional.avg_pool2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)


def test_sharpness_per_source_shows_which_eyes_lost_their_detail(data, features):
    """Half the eyes are pre-smoothed ('soft/'), half keep their pixel noise ('grainy/'): a blurring decoder takes the
    grainy eyes' detail, and their Laplacian energy dominates the pooled ratio."""
    soft = torch.arange(len(data)) % 4 < 2  # both labels in both sources
    images = data.images.clone()
    blurred = BlurringDecoder().decode(BlurringDecoder().decode(to_float(images[soft]).flatten(1)))
    images[soft] = ((blurred.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    paths = [f"{'soft' if s else 'grainy'}/{i}.png" for i, s in enumerate(soft.tolist())]
    two_sources = EyeData(images, data.labels, data.splits, paths)
    metrics = evaluate(BlurringDecoder(), two_sources, features)
    grainy, smooth = metrics["recon_sharpness[grainy]"], metrics["recon_sharpness[soft]"]
    assert grainy < 0.5 < smooth < 1.0
    assert grainy < metrics["recon_sharpness"] < smooth and metrics["recon_sharpness"] - grainy < smooth - metrics["recon_sharpness"]
    assert metrics["recon_ssim[grainy]"] < metrics["recon_ssim"] < metrics["recon_ssim[soft]"] <= 1.0  # blurring costs the grainy eyes structure
    one_source = evaluate(BlurringDecoder(), data, features)
    assert "recon_sharpness[grainy]" not in one_source and not any("[" in key for key in one_source)  # the pooled figures only


# ---------------------------------------------------------------------- evaluate()
def test_identity_reconstruction_scores_perfectly(data, features):
    model = IdentityAutoencoder()
    train = data.subset("train")
    latent_map = pca_map(to_float(train.images).flatten(1).numpy(), train.labels.numpy())
    metrics = evaluate(model, data, features, latent_map, split="held-out")
    assert metrics["recon_mse"] == 0 and metrics["recon_psnr"] == pytest.approx(100.0)
    assert metrics["recon_ssim"] == pytest.approx(1.0, abs=1e-4)
    assert metrics["label_preservation"] == metrics["feature_cnn_accuracy"] >= 0.95
    assert metrics["probe_accuracy"] >= 0.95 and metrics["probe_balanced_accuracy"] >= 0.95  # pixels encode the label
    assert metrics["knn_accuracy"] >= 0.9
    assert metrics["eval_images"] == 32 and metrics["prior_samples"] == 32
    assert metrics["active_units"] > 0
    assert metrics["recon_sharpness"] == pytest.approx(1.0)
    assert metrics["recon_frechet_distance"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["sample_sharpness"] > 5  # the identity's "prior samples" are pixel noise
    # the map's open direction is zero here: nothing moves, so only the eyes the CNN misreads count as flipped
    assert metrics["edit_flip"] == pytest.approx(1 - metrics["feature_cnn_accuracy"])


def test_max_images_scores_a_seeded_sample_of_the_split(data, features):
    """A large held-out split is scored on a seeded sample: the same eyes on every call, and the card can say so."""
    whole = evaluate(IdentityAutoencoder(), data, features)
    sampled = evaluate(IdentityAutoencoder(), data, features, max_images=10)
    assert whole["eval_images"] == whole["held_out_images"] == len(data.subset("val", "test")) > 10
    assert sampled["eval_images"] == sampled["prior_samples"] == 10 and sampled["held_out_images"] == whole["held_out_images"]
    assert evaluate(IdentityAutoencoder(), data, features, max_images=10) == sampled  # seeded
    assert evaluate(IdentityAutoencoder(), data, features, max_images=1000) == whole  # a cap above the split changes nothing
    with pytest.raises(ValueError, match="max_images must be at least 2"):
        evaluate(IdentityAutoencoder(), data, features, max_images=0)


def test_the_sample_is_seeded_random_and_keeps_each_sources_share():
    paths = [f"big/open/{i}.png" for i in range(80)] + [f"small/closed/{i}.png" for i in range(20)]
    index = sample_index(paths, 10, seed=0)
    assert len(index) == len(set(index.tolist())) == 10 and torch.equal(index, index.sort().values)
    assert (index >= 80).sum() == 2  # the small source keeps its fifth
    assert torch.equal(sample_index(paths, 10, seed=0), index) and not torch.equal(sample_index(paths, 10, seed=1), index)
    assert not torch.equal(sample_index(paths, 10, seed=0)[:8], torch.arange(8))  # random, not the first eyes
    assert len(sample_index([f"{i}.png" for i in range(50)], 7)) == 7  # one source: a plain random sample
    three = [f"{name}/open/{i}.png" for name, n in (("a", 35), ("b", 35), ("c", 30)) for i in range(n)]
    assert [len(sample_index(three, size)) for size in (5, 10, 11)] == [5, 10, 11]  # exactly as many, never more


def test_samples_of_a_latent_mixture_fitted_to_the_training_eyes_score_closer_to_real(data, features):
    """The identity's prior draws are pixel noise; draws from a mixture fitted to the training eyes' pixels look like eyes."""
    import dataclasses

    from vaegan.latent_map import fit_mixture

    train = data.subset("train")
    pixels = to_float(train.images).flatten(1).numpy()
    latent_map = pca_map(pixels, train.labels.numpy())
    assert "mixture_frechet_distance" not in evaluate(IdentityAutoencoder(), data, features, latent_map)  # a map without one
    metrics = evaluate(IdentityAutoencoder(), data, features, dataclasses.replace(latent_map, **fit_mixture(pixels, components=2)))
    assert metrics["mixture_frechet_distance"] < 0.5 * metrics["frechet_distance"]
    assert abs(metrics["mixture_sample_sharpness"] - 1) < 0.5 < metrics["sample_sharpness"] - 1


def test_edit_flip_reads_eyes_moved_along_the_class_mean_difference(data, features):
    model = IdentityAutoencoder()
    train = data.subset("train")
    pixels, labels = to_float(train.images).flatten(1).numpy(), train.labels.numpy()
    latent_map = pca_map(pixels, labels)
    latent_map.open_direction = pixels[labels == 1].mean(0) - pixels[labels == 0].mean(0)  # closed mean -> open mean, in pixels
    moved = evaluate(model, data, features, latent_map)
    assert moved["edit_flip"] >= 0.75  # an open eye minus the open-closed difference looks closed, and back
    latent_map.open_direction = -latent_map.open_direction  # the wrong way: open eyes pushed further open
    assert evaluate(model, data, features, latent_map)["edit_flip"] <= 0.1


def test_probe_is_fitted_on_a_capped_seeded_subset_of_a_large_train_split(data, features, monkeypatch):
    import vaegan.evaluate as evaluate_module

    encoded = []
    real_encode = evaluate_module.encode_images
    monkeypatch.setattr(evaluate_module, "encode_images", lambda model, images, **kw: encoded.append(len(images)) or real_encode(model, images, **kw))
    monkeypatch.setattr(evaluate_module, "PROBE_IMAGES", 30)
    model = IdentityAutoencoder()
    train = data.subset("train")
    latent_map = pca_map(to_float(train.images).flatten(1).numpy(), train.labels.numpy())
    capped = evaluate(model, data, features, latent_map)
    assert len(train) == 96 and encoded == [30]
    assert capped["probe_accuracy"] >= 0.9  # 30 latents still separate the synthetic classes
    assert evaluate(model, data, features, latent_map) == capped  # the same subset every time


def test_constant_decoder_loses_structure_and_labels(data, features):
    train = data.subset("train")
    latent_map = pca_map(to_float(train.images).flatten(1).numpy(), train.labels.numpy())
    metrics = evaluate(ConstantDecoder(), data, features, latent_map, num_samples=40)
    assert metrics["recon_ssim"] < 0.3
    assert metrics["recon_sharpness"] == 0.0 and metrics["sample_sharpness"] == 0.0  # flat grey: no detail at all
    assert metrics["recon_frechet_distance"] > 1.0
    assert metrics["label_preservation"] == 0.5  # one prediction for every eye of a balanced set
    assert metrics["prior_samples"] == 40


def test_evaluate_a_tiny_vaegan_is_complete_and_deterministic(data, features):
    torch.manual_seed(0)
    model = VAEGAN(ModelConfig(image_size=SIZE, base_channels=8, latent_dim=8))
    train = data.subset("train")
    from vaegan.latent_map import encode_images

    latent_map = pca_map(encode_images(model, train.images), train.labels.numpy())
    first = evaluate(model, data, features, latent_map, seed=1)
    second = evaluate(model, data, features, latent_map, seed=1)
    assert first == second
    expected = {
        "recon_mse", "recon_psnr", "recon_ssim", "frechet_distance", "kid", "probe_accuracy",
        "probe_balanced_accuracy", "knn_accuracy", "active_units", "label_preservation", "feature_cnn_accuracy",
        "recon_sharpness", "sample_sharpness", "recon_frechet_distance", "edit_flip",
    }
    assert expected <= set(first)
    assert all(math.isfinite(value) for value in first.values())
    assert not model.training


def test_shape_mismatch_is_refused(data):
    features = EyeFeatureNet(FeatureConfig(image_size=64, channels=1, widths=[4]))
    with pytest.raises(ValueError, match="image shapes disagree"):
        evaluate(IdentityAutoencoder(), data, features)


# ---------------------------------------------------------------------- command line
def write_folder(root, n: int = 48) -> None:
    """PNG eyes in train/ and test/ class folders, as a user's data dir."""
    data = make_data(n, seed=5)
    for i, (image, label) in enumerate(zip(data.images, data.labels)):
        split = "train" if i < 0.75 * n else "test"
        folder = root / split / ("open" if label else "closed")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")


def test_command_line_fit_features_then_evaluate(tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    write_folder(tmp_path / "eyes")
    feature_file = tmp_path / "features.safetensors"
    cache = str(tmp_path / "cache")
    common = ["--data-dir", str(tmp_path / "eyes"), "--cache-dir", cache]
    assert eye_features.main([*common, "--out", str(feature_file), "--epochs", "2", "--image-size", str(SIZE)]) == 0
    assert "held_out_accuracy" in feature_file_info(feature_file)
    again = tmp_path / "again.safetensors"  # the same command through vaegan.evaluate, as `vaegan-evaluate fit-features`
    assert main(["fit-features", *common, "--out", str(again), "--epochs", "2", "--image-size", str(SIZE)]) == 0
    first, second = load_feature_network(feature_file).state_dict(), load_feature_network(again).state_dict()
    assert all(torch.equal(first[name], value) for name, value in second.items())  # seeded: the same network

    torch.manual_seed(0)
    model = VAEGAN(ModelConfig(image_size=SIZE, base_channels=8, latent_dim=8))
    model.save_pretrained(tmp_path / "model")
    train = make_data(48, seed=5)
    pca_map(np.random.default_rng(0).normal(size=(36, 8)), train.labels[:36].numpy()).save(tmp_path / "model")
    out = tmp_path / "metrics.json"
    assert main(["--model", str(tmp_path / "model"), *common, "--features", str(feature_file), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert {"recon_ssim", "frechet_distance", "kid", "probe_accuracy", "knn_accuracy", "label_preservation"} <= set(metrics)
    assert "frechet_distance" in caplog.text  # the table, logged

    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    assert main(["--model", str(tmp_path / "model"), *common, "--features", str(tmp_path / "bad.safetensors")]) == 1
    assert main(["--model", str(tmp_path / "no-model"), *common, "--features", str(feature_file)]) == 1
    assert "no-model: no such model dir" in caplog.text
    with pytest.raises(SystemExit) as refused:  # refused before the model and data are loaded
        main(["--model", str(tmp_path / "no-model"), *common, "--max-images", "1"])
    assert refused.value.code == 2 and "--max-images must be at least 2" in capsys.readouterr().err
