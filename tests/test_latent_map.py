import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from vaegan import VAEGAN, ModelConfig
import dataclasses

from vaegan.latent_map import FILENAME, LatentMap, build_latent_map, fit_mixture


def random_map(n=30, z=4, seed=0) -> LatentMap:
    rng = np.random.default_rng(seed)
    return LatentMap(
        mu=rng.normal(size=(n, z)).astype(np.float32),
        xy=rng.normal(size=(n, 2)).astype(np.float32),
        labels=(np.arange(n) % 2).astype(np.int64),
        probe_weight=np.array([5.0, 0, 0, 0], np.float32),
        probe_bias=np.zeros(1, np.float32),
        open_direction=np.ones(z, np.float32),
    )


def test_save_load_round_trip(tmp_path):
    latent_map = random_map()
    latent_map.save(tmp_path)
    loaded = LatentMap.load(tmp_path)
    for name in vars(latent_map):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(latent_map, name))
    assert len(loaded) == 30


def test_malformed_maps_are_refused(tmp_path):
    save_file({"mu": np.zeros((3, 4), np.float32)}, str(tmp_path / FILENAME))
    with pytest.raises(ValueError, match="missing"):
        LatentMap.load(tmp_path)
    bad = random_map()
    bad.xy = bad.xy[:5]
    bad.save(tmp_path)
    with pytest.raises(ValueError, match="inconsistent"):
        LatentMap.load(tmp_path)
    (tmp_path / FILENAME).write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ValueError, match="not a safetensors file"):
        LatentMap.load(tmp_path)


def test_probe_and_placement():
    latent_map = random_map()
    assert latent_map.predict_open(np.array([[1.0, 0, 0, 0]]))[0] > 0.99
    assert latent_map.predict_open(np.array([[-1.0, 0, 0, 0]]))[0] < 0.01
    placed = latent_map.place(latent_map.mu[[3, 7]])
    np.testing.assert_allclose(placed, latent_map.xy[[3, 7]], atol=1e-3)  # a map point lands on itself


def test_build_latent_map_from_a_model():
    torch.manual_seed(0)
    model = VAEGAN(ModelConfig(image_size=32, base_channels=8, latent_dim=6))
    labels = torch.arange(40) % 2
    images = torch.randint(0, 64, (40, 1, 32, 32), dtype=torch.uint8) + 190 * (labels == 0).view(-1, 1, 1, 1).to(torch.uint8)
    # closed eyes bright, open eyes dark: even an untrained encoder separates them linearly
    latent_map = build_latent_map(model, images, labels, size=30, seed=1)
    assert latent_map.mu.shape == (30, 6) and latent_map.xy.shape == (30, 2) and np.isfinite(latent_map.xy).all()
    assert set(latent_map.labels.tolist()) == {0, 1}
    accuracy = ((latent_map.predict_open(latent_map.mu) > 0.5) == latent_map.labels).mean()
    assert accuracy >= 0.9  # the stored probe separates the classes it was fitted on
    expected = latent_map.mu[latent_map.labels == 1].mean(0) - latent_map.mu[latent_map.labels == 0].mean(0)
    np.testing.assert_allclose(latent_map.open_direction, expected, rtol=1e-5)
    assert latent_map.has_mixture and latent_map.mixture_means.shape[1] == 6  # fitted to the map's latents
    assert latent_map.mixture_weights.sum() == pytest.approx(1.0, abs=1e-5)


def test_mixture_samples_land_where_the_latents_are(tmp_path):
    """Two clusters far from the prior's mass: mixture draws fall in them, half in each, with their spread."""
    rng = np.random.default_rng(0)
    mu = np.concatenate([rng.normal(-4, 0.5, (200, 4)), rng.normal(4, 0.5, (200, 4))]).astype(np.float32)
    latent_map = dataclasses.replace(random_map(400), mu=mu, **fit_mixture(mu, components=2))
    z = latent_map.sample_mixture(2000, torch.Generator().manual_seed(0))
    assert z.shape == (2000, 4) and 0.45 < (z[:, 0] > 0).mean() < 0.55
    assert np.abs(np.abs(z).mean(0) - 4).max() < 0.1 and np.abs(z[z[:, 0] > 0].std(0) - 0.5).max() < 0.05
    np.testing.assert_array_equal(z, latent_map.sample_mixture(2000, torch.Generator().manual_seed(0)))  # seeded
    # saved and loaded with the map; a map without one (made before maps had it) still loads, and says so
    latent_map.save(tmp_path)
    loaded = LatentMap.load(tmp_path)
    np.testing.assert_array_equal(loaded.mixture_scale_tril, latent_map.mixture_scale_tril)
    random_map().save(tmp_path)
    assert not LatentMap.load(tmp_path).has_mixture
    with pytest.raises(ValueError, match="no mixture"):
        LatentMap.load(tmp_path).sample_mixture(1, torch.Generator())
    # a damaged mixture is refused at load
    dataclasses.replace(latent_map, mixture_weights=np.array([0.9, 0.9], np.float32)).save(tmp_path)
    with pytest.raises(ValueError, match="inconsistent Gaussian mixture"):
        LatentMap.load(tmp_path)
    dataclasses.replace(latent_map, mixture_means=None).save(tmp_path)
    with pytest.raises(ValueError, match="inconsistent Gaussian mixture"):
        LatentMap.load(tmp_path)
