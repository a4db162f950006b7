"""vaegan.card: the model card's metadata, table and pictures; vaegan.pictures: what the card shows."""

import numpy as np
import torch
import yaml
from conftest import random_latent_map, tiny_model

from vaegan import VAEGAN, card
from vaegan.data import EyeData
from vaegan.networks import DISCRIMINATOR_FILE, HUB_TAGS
from vaegan.pictures import draw_latent_map, preview_inputs, write_card_images


def test_card_metadata_table_and_pictures(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "samples.png").write_bytes(b"png")
    card.write_model_card(tmp_path, {"command": "python train.py --epochs 2"}, {"recon_ssim": 0.75, "kid": 0.5, "not_a_card_metric": 1.0})
    text = (tmp_path / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["tags"] == HUB_TAGS and meta["metrics"] == ["kid", "recon_ssim"]
    assert meta["datasets"] == ["sehriyarmemmedli/open-closed-eyes-dataset"]  # no data_dir: the Kaggle set
    assert "| reconstruction SSIM | 0.75 |" in text and "![samples](images/samples.png)" in text and "interpolation.png" not in text
    assert "github.com/vaegan" not in text and "64x64 grayscale" in text
    assert "| metric | value |" in text and "validation and test splits" not in text  # no eval_images: no claim about them
    # per-source SSIM and sharpness, after the pooled figure, and the eyes it was measured on
    metrics = {"recon_sharpness": 0.3, "recon_sharpness[cew]": 1.2, "recon_sharpness[eyestate]": 0.15, "recon_ssim": 0.8, "recon_ssim[eyestate]": 0.7, "eval_images": 1062}
    text = card.write_model_card(tmp_path, {}, metrics).read_text()
    lines = text.splitlines()
    assert lines.index("| reconstruction SSIM | 0.8 |") < lines.index("| reconstruction SSIM, eyestate eyes only | 0.7 |")
    rows = [line for line in text.splitlines() if line.startswith("| fine detail of reconstructions")]
    assert rows == [
        "| fine detail of reconstructions (Laplacian variance / real's; 1 = as sharp as real) | 0.3 |",
        "| fine detail of reconstructions, cew eyes only | 1.2 |",
        "| fine detail of reconstructions, eyestate eyes only | 0.15 |",
    ]
    assert "On the 1062 eyes of the validation and test splits (none was trained on)." in text
    sampled = card.write_model_card(tmp_path, {}, metrics | {"eval_images": 5000, "held_out_images": 35000}).read_text()
    assert "On a seeded sample of 5000 of the 35000 eyes of the validation and test splits" in sampled
    # the card names the discriminator only where the folder holds one (a plain VAE's has none)
    assert DISCRIMINATOR_FILE not in sampled
    (tmp_path / DISCRIMINATOR_FILE).write_bytes(b"weights")
    assert f"Its discriminator (`{DISCRIMINATOR_FILE}`) is here too" in card.write_model_card(tmp_path, {}, metrics).read_text()
    # the mixin writes the same tags when it saves the model
    assert set(HUB_TAGS) <= set(VAEGAN._hub_mixin_info.model_card_data.tags)


def test_preview_inputs_are_seeded_and_held_out():
    labels = torch.arange(40) % 2
    splits = torch.tensor([0] * 30 + [2] * 10, dtype=torch.int8)
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 64, 64).contiguous()  # image i is all i
    data = EyeData(images, labels, splits, [str(i) for i in range(40)])
    z, real = preview_inputs(data, latent_dim=8, seed=3)
    z_again, real_again = preview_inputs(data, latent_dim=8, seed=3)
    assert z.shape == (64, 8) and torch.equal(z, z_again) and torch.equal(real, real_again)
    assert len(real) == 10 and sorted(real[:, 0, 0, 0].tolist()) == list(range(30, 40))  # the 10 test eyes, shuffled
    assert not torch.equal(preview_inputs(data, latent_dim=8, seed=4)[0], z)


def test_card_images_and_the_map_picture(tmp_path):
    latent_map = random_latent_map(n=50)
    picture = np.asarray(draw_latent_map(latent_map, size=200))
    assert picture.shape == (200, 200, 3)
    red = ((picture[..., 0] > 200) & (picture[..., 1] < 100)).sum()
    blue = ((picture[..., 2] > 200) & (picture[..., 0] < 100)).sum()
    assert red > 0 and blue > 0  # closed and open points both drawn
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    write_card_images(tiny_model(), latent_map, z, torch.zeros(4, 1, 64, 64, dtype=torch.uint8), tmp_path)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["interpolation.png", "latent_map.png", "reconstructions.png", "samples.png"]
