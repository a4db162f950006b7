"""benchmarks/sharpness_scale.py: blurs lower the sharpness ratio in order, and a model's figure is placed between them."""

from __future__ import annotations

import pytest
import torch

from benchmarks.sharpness_scale import blur, equivalent_sigma, main, ratio_and_ssim
from conftest import make_layout, tiny_model
from vaegan.data import load_dataset, to_float


def test_a_wider_blur_leaves_less_detail_and_structure(eye_folder):
    x = to_float(load_dataset(eye_folder, image_size=64).images)
    scores = [ratio_and_ssim(x, blur(x, sigma)) for sigma in (0.3, 0.7, 1.5)]
    assert ratio_and_ssim(x, x) == pytest.approx((1.0, 1.0), abs=1e-4)
    assert 1.0 > scores[0][0] > scores[1][0] > scores[2][0] > 0 and 1.0 >= scores[0][1] > scores[1][1] > scores[2][1]


def test_equivalent_sigma_interpolates_between_measured_blurs_and_says_when_outside():
    sigmas, ratios = [0.5, 1.0, 2.0], [0.8, 0.2, 0.05]
    assert equivalent_sigma(0.2, sigmas, ratios) == "1.00"
    assert 0.5 < float(equivalent_sigma(0.4, sigmas, ratios)) < 1.0  # between the two blurs around it
    assert equivalent_sigma(1.3, sigmas, ratios) == "< 0.5" and equivalent_sigma(0.01, sigmas, ratios) == "> 2"


def test_prints_a_row_per_source_and_places_the_model(tmp_path, capsys):
    make_layout(tmp_path / "eyes" / "sharp", "kaggle")
    make_layout(tmp_path / "eyes" / "soft", "drowsy")
    tiny_model().save_pretrained(tmp_path / "model")
    assert main(["--data-dir", str(tmp_path / "eyes"), "--model", str(tmp_path / "model"), "--sigmas", "0.5,1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| sharp", "| soft", "| all"))]
    assert [row.split(" (")[0] for row in rows] == ["| sharp", "| soft", "| all"]
    assert all(len(row.strip("|").split("|")) == 5 for row in rows)  # eyes, two blurs, the model, its equivalent blur
