"""Tests of vaegan.metrics: each single metric on cases with a known answer (synthetic eyes from test_evaluate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_evaluate import data, draw_eyes, features, make_data  # noqa: F401 - data and features are fixtures

from vaegan.data import to_float
from vaegan.metrics import (
    active_units,
    feature_distances,
    knn_accuracy_2d,
    laplacian_variance,
    probe_scores,
    reconstruction_scores,
    sharpness_ratio,
)


@torch.no_grad()
def sample_quality(features, real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Frechet distance and KID between two sets of float images, on the eye CNN's features."""
    return feature_distances(features.eval()(real), features(fake), seed=seed)


def test_frechet_distance_is_zero_for_identical_sets_and_large_for_different_ones(features):
    open_eyes = to_float(draw_eyes(torch.ones(120, dtype=torch.long), seed=1))
    open_again = to_float(draw_eyes(torch.ones(120, dtype=torch.long), seed=2))
    closed_eyes = to_float(draw_eyes(torch.zeros(120, dtype=torch.long), seed=3))
    same = sample_quality(features, open_eyes, open_eyes)
    similar = sample_quality(features, open_eyes, open_again)
    different = sample_quality(features, open_eyes, closed_eyes)
    assert same["frechet_distance"] == pytest.approx(0.0, abs=1e-3)
    assert different["frechet_distance"] > 10 * similar["frechet_distance"] > 0
    assert different["frechet_distance"] > 1000 * max(same["frechet_distance"], 1e-6)
    assert abs(same["kid"]) < 0.1 * different["kid"]
    assert different["kid"] > 10 * abs(similar["kid"])


def test_sample_quality_is_seeded(features):
    a = to_float(draw_eyes(torch.ones(50, dtype=torch.long), seed=1))
    b = to_float(draw_eyes(torch.zeros(50, dtype=torch.long), seed=2))
    assert sample_quality(features, a, b, seed=4) == sample_quality(features, a, b, seed=4)


def test_reconstruction_scores_perfect_and_constant():
    x = to_float(make_data(32).images)
    perfect = reconstruction_scores(x, x.clone())
    assert perfect["mse"].max() == 0
    assert perfect["psnr"].min() == pytest.approx(100.0)
    assert perfect["ssim"].min() == pytest.approx(1.0, abs=1e-4)
    flat = reconstruction_scores(x, torch.zeros_like(x))
    assert flat["ssim"].max() < 0.3
    assert flat["psnr"].max() < 15
    noisy = reconstruction_scores(x, x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    assert 30 < noisy["psnr"].mean() < 100 and 0.8 < noisy["ssim"].mean() < 1.0


def test_psnr_matches_its_definition():
    x = torch.zeros(2, 1, 16, 16)
    x_rec = torch.full_like(x, 0.2)  # 0.1 in [0, 1] units: MSE 0.01, PSNR 20 dB
    scores = reconstruction_scores(x, x_rec)
    torch.testing.assert_close(scores["mse"], torch.full((2,), 0.01))
    torch.testing.assert_close(scores["psnr"], torch.full((2,), 20.0))


def test_sharpness_ratio_is_one_for_the_same_images_below_for_blur_above_for_noise():
    x = to_float(make_data(32).images)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)  # the fixtures carry some noise already
    grid = x.clone()
    grid[:, :, ::2, ::2] += 0.3  # a 2x2 checkerboard, the texture of a sub-pixel decoder gone wrong
    assert sharpness_ratio(x, x.clone()) == pytest.approx(1.0)
    assert sharpness_ratio(blurred, x) < 0.5
    assert sharpness_ratio(noisy, x) > 1.5
    assert sharpness_ratio(grid, x) > 1.5  # (on [0, 1], +0.15 on one pixel in four)
    assert laplacian_variance(torch.zeros(3, 1, 8, 8)).tolist() == [0.0, 0.0, 0.0]  # a flat image has no detail


def test_laplacian_variance_matches_a_hand_computed_case():
    x = torch.full((1, 1, 5, 5), -1.0)
    x[0, 0, 2, 2] = 1.0  # one white pixel on black: in [0, 1], the valid 3x3 response is [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    values = torch.tensor([0.0, 1, 0, 1, -4, 1, 0, 1, 0])
    torch.testing.assert_close(laplacian_variance(x), values.var().view(1))


def test_active_units_counts_only_varying_dims():
    rng = np.random.default_rng(0)
    mu = np.concatenate(
        [
            rng.normal(0, 1, (500, 5)),  # active
            np.full((500, 3), 0.7),  # constant: inactive
            rng.normal(2, 0.05, (500, 2)),  # variance 0.0025 < 0.01: inactive
        ],
        axis=1,
    )
    assert active_units(mu) == 5
    assert active_units(np.zeros((10, 4))) == 0


def test_probe_reads_a_label_encoding_latent_and_not_a_random_one():
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 2, 1000), rng.integers(0, 2, 2000)
    informative = lambda y: np.concatenate([2.0 * y[:, None] + 0.3 * rng.normal(size=(len(y), 1)), rng.normal(size=(len(y), 7))], 1)
    accuracy, balanced = probe_scores(informative(y_train), y_train, informative(y_test), y_test)
    assert accuracy > 0.99 and balanced > 0.99
    accuracy, balanced = probe_scores(rng.normal(size=(1000, 8)), y_train, rng.normal(size=(2000, 8)), y_test)
    assert abs(accuracy - 0.5) < 0.05 and abs(balanced - 0.5) < 0.05


def test_balanced_accuracy_sees_a_majority_class_guess():
    y_train = np.array([0] * 300 + [1] * 100)
    y_test = np.array([0] * 300 + [1] * 100)
    rng = np.random.default_rng(1)
    accuracy, balanced = probe_scores(rng.normal(size=(400, 4)), y_train, rng.normal(size=(400, 4)), y_test)
    assert accuracy == pytest.approx(0.75, abs=0.03) and balanced == pytest.approx(0.5, abs=0.03)


def test_knn_on_the_map_separated_and_random():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    xy = rng.normal(size=(400, 2)) + 6.0 * y[:, None]
    assert knn_accuracy_2d(xy[:300], y[:300], xy[300:], y[300:]) == 1.0
    shuffled = rng.integers(0, 2, 400)
    assert abs(knn_accuracy_2d(xy[:300], shuffled[:300], xy[300:], shuffled[300:]) - 0.5) < 0.15
