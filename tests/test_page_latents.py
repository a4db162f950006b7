"""benchmarks/page_latents.py: the latents the page makes itself (map-click blends, interpolation frames), scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.page_latents import blend_latents, click_locations, main, path_latents
from conftest import random_latent_map, tiny_model


def test_click_locations_lie_part_of_the_way_between_map_neighbours():
    xy = np.stack([np.arange(50.0) * 10, np.zeros(50)], 1)  # points 10 apart on a line
    locations = click_locations(xy, 200, neighbours=1)  # toward the nearest neighbour: 25-75 % of one gap
    assert (locations[:, 1] == 0).all()
    offset = locations[:, 0] % 10
    assert ((offset >= 2.5) & (offset <= 7.5)).all()


def test_blends_of_one_point_are_the_nearest_eye_and_paths_start_and_end_at_the_pair():
    latent_map = random_latent_map()
    locations = latent_map.xy[[3, 7]] + 1e-4
    np.testing.assert_allclose(blend_latents(latent_map, locations, k=1, power=1), latent_map.mu[[3, 7]], rtol=1e-6)
    mu = latent_map.mu
    for spherical in (True, False):
        start, end = path_latents(mu, 5, 0.0, spherical), path_latents(mu, 5, 1.0, spherical)
        pairs = np.random.default_rng(0).integers(0, len(mu), size=(5, 2))
        np.testing.assert_allclose(start, mu[pairs[:, 0]], atol=1e-5)
        np.testing.assert_allclose(end, mu[pairs[:, 1]], atol=1e-5)


def test_main_scores_every_latent_set(eye_folder, tmp_path, capsys):
    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    random_latent_map(n=40).save(tmp_path / "model")
    assert main(["--model", str(tmp_path / "model"), "--data-dir", str(eye_folder), "--count", "30"]) == 0
    assert torch.is_grad_enabled()  # the benchmark leaves the process as it found it
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {tmp_path / 'model'} ")]
    assert len(rows) == 6 + 4
    assert sum("(the page's)" in row[1] for row in rows) == 3  # the page's blend, and slerp at both t
    assert all(float(row[2]) >= 0 and float(row[3]) > 0 for row in rows)
    # the blend of one point is the nearest eye: its latents keep their norm, a blend of 16 shrinks toward the mean
    norms = {row[1]: float(row[4].rstrip(" |")) for row in rows}
    assert norms["map click: blend of 16, weights 1 / distance^1"] < norms["map click: the nearest eye"]


def test_a_model_without_a_latent_map_is_refused(eye_folder, tmp_path):
    tiny_model().save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "model"), "--data-dir", str(eye_folder)])
