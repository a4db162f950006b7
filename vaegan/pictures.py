"""Pictures of a model's outputs: sample and reconstruction grids, an interpolation strip, the latent-map scatter.

One seed policy for every picture of a run: `preview_inputs` draws the prior latents and picks
the held-out eyes from the run's seed, so the training run's sample grids (`samples/`) and the
model card's pictures (`model/images/`) show the same draws and the same eyes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import save_image

from vaegan.data import EyeData, to_float
from vaegan.networks import VAEGAN

if TYPE_CHECKING:  # the Trainer draws grids with this module and needs nothing of the latent map
    from vaegan.latent_map import LatentMap

GRID = dict(nrow=8, normalize=True, value_range=(-1, 1))


def preview_inputs(data: EyeData, latent_dim: int, seed: int, samples: int = 64, eyes: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed prior latents (samples, Z) and held-out uint8 eyes (eyes, C, H, W) that a run's pictures show."""
    generator = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(samples, latent_dim, generator=generator)
    held_out = data.held_out()
    pool = held_out if len(held_out) else data.subset("train")
    return z, pool.images[torch.randperm(len(pool), generator=generator)[:eyes]]


@torch.no_grad()
def save_samples(model: VAEGAN, z: torch.Tensor, path: str | os.PathLike) -> None:
    """A grid of decoded prior latents z (N, Z), 8 a row."""
    model.eval()
    device = next(model.parameters()).device
    save_image(model.decode(z.to(device)).float().cpu(), path, **GRID)


@torch.no_grad()
def save_reconstructions(model: VAEGAN, real: torch.Tensor, path: str | os.PathLike) -> None:
    """A grid of uint8 eyes (N, C, H, W) beside their reconstructions from mu: real | reconstructed, pair by pair."""
    model.eval()
    device = next(model.parameters()).device
    x = to_float(real.to(device))
    pairs = torch.stack([x, model.decode(model.encode(x)[0]).float()], dim=1).flatten(0, 1)  # (2N, C, H, W)
    save_image(pairs.cpu(), path, **GRID)


@torch.no_grad()
def save_interpolation(model: VAEGAN, ends: torch.Tensor, path: str | os.PathLike, steps: int = 10) -> None:
    """One row of `steps` decodings along the slerp between two latents ends (2, Z)."""
    from vaegan.latent_map import slerp

    model.eval()
    device = next(model.parameters()).device
    path_z = slerp(ends[0].float().cpu().numpy(), ends[1].float().cpu().numpy(), np.linspace(0, 1, steps))  # (steps, Z)
    strip = model.decode(torch.from_numpy(path_z).to(device))
    save_image(strip.float().cpu(), path, **(GRID | {"nrow": steps}))


def draw_latent_map(latent_map: LatentMap, size: int = 640) -> Image.Image:
    """A static scatter of the latent map (closed red on top of open blue) for the model card."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    low, high = latent_map.xy.min(0), latent_map.xy.max(0)
    pixels = 20 + (latent_map.xy - low) / np.maximum(high - low, 1e-9) * (size - 40)
    for label, colour in ((1, (59, 130, 246)), (0, (239, 68, 68))):  # minority-friendly: closed drawn last
        for x, y in pixels[latent_map.labels == label]:
            draw.ellipse([x - 2, size - y - 2, x + 2, size - y + 2], fill=colour)
    draw.text((10, 6), "latent map (UMAP): blue = open, red = closed", fill="black")
    return image


@torch.no_grad()
def write_card_images(model: VAEGAN, latent_map: LatentMap | None, z: torch.Tensor, real: torch.Tensor, model_dir: str | os.PathLike) -> None:
    """Pictures for the model card in model_dir/images: samples, reconstructions, interpolation, latent map.

    `z` and `real` come from `preview_inputs`; the reconstruction and interpolation pictures start
    from the first of the real eyes (they go to the Hub with the card: pass images you may publish).
    """
    out = Path(model_dir) / "images"
    out.mkdir(parents=True, exist_ok=True)
    save_samples(model, z, out / "samples.png")
    save_reconstructions(model, real[:16], out / "reconstructions.png")
    device = next(model.parameters()).device
    ends = model.encode(to_float(real[:2].to(device)))[0] if len(real) > 1 else z[:2]
    save_interpolation(model, ends, out / "interpolation.png")
    if latent_map is not None:
        draw_latent_map(latent_map).save(out / "latent_map.png")
