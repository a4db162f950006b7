"""How far the latents that the page makes itself decode from real eyes: map-click blends and interpolation frames.

    python benchmarks/page_latents.py --data-dir ../shared/data --model MODEL_DIR [--model ...] [--cache-dir DIR]

For each model (a model dir with its latent map):
- map clicks: `--count` locations between map neighbours (a point and one of its 20 nearest on the map, 25-75 % of the
  way), decoded as the nearest map eye and as `LatentMap.latent_at` blends for several (k, power), the page's own
  setting marked;
- interpolation: `--count` random pairs of held-out eyes, the frames at t = 0.25 and 0.5 by slerp (the page's
  Interpolate tab) and by linear interpolation.

Each set is scored against the held-out eyes (val + test) on the model card's eye-state CNN: Frechet distance, fine
detail (Laplacian variance over the real eyes') and the latents' mean norm.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import git_commit, machine  # noqa: E402
from vaegan.data import load_dataset, to_float  # noqa: E402
from vaegan.evaluate import encode_images, select_split  # noqa: E402
from vaegan.eye_features import load_feature_network  # noqa: E402
from vaegan.hub import load_model  # noqa: E402
from vaegan.latent_map import BLEND_NEIGHBOURS, BLEND_POWER, LatentMap, slerp  # noqa: E402
from vaegan.metrics import feature_distances, laplacian_variance  # noqa: E402

BLENDS = ((1, 1.0), (2, 1.0), (3, 2.0), (8, 1.0), (8, 2.0), (16, 1.0))  # (k, power) of latent_at; (1, _) is the nearest eye


def click_locations(xy: np.ndarray, count: int, seed: int = 0, neighbours: int = 20) -> np.ndarray:
    """`count` map locations (count, 2), each part of the way from a random point to one of its nearest on the map."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(xy), count)
    locations = np.empty((count, 2))
    for row, i in enumerate(starts):
        distances = np.hypot(*(xy - xy[i]).T)
        near = np.argsort(distances)[1:neighbours + 1]
        t = rng.uniform(0.25, 0.75)
        locations[row] = (1 - t) * xy[i] + t * xy[rng.choice(near)]
    return locations


def blend_latents(latent_map: LatentMap, locations: np.ndarray, k: int, power: float) -> np.ndarray:
    """The latents the page decodes for clicks at these locations with `latent_at(k, power)`: (count, Z)."""
    return np.stack([latent_map.latent_at(x, y, k=k, power=power)[0] for x, y in locations])


def path_latents(mu: np.ndarray, count: int, t: float, spherical: bool, seed: int = 0) -> np.ndarray:
    """Frame t of the path between `count` random pairs of these latents, by slerp or linear interpolation: (count, Z)."""
    pairs = np.random.default_rng(seed).integers(0, len(mu), size=(count, 2))
    if spherical:
        return np.stack([slerp(mu[a], mu[b], np.array([t]))[0] for a, b in pairs])
    return (1 - t) * mu[pairs[:, 0]] + t * mu[pairs[:, 1]]


@torch.no_grad()
def score(model, features, real_features: torch.Tensor, real_detail: float, z: np.ndarray) -> dict[str, float]:
    """Decode z and score the images against the real eyes' features and fine detail."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    images = torch.cat([model.decode(batch).float().clamp(-1, 1) for batch in z.split(256)])
    fake = torch.cat([features(batch) for batch in images.split(256)])
    return {
        "fd": feature_distances(real_features, fake, seed=0)["frechet_distance"],
        "detail": laplacian_variance(images).mean().item() / real_detail,
        "norm": float(np.linalg.norm(z.numpy(), axis=1).mean()),
    }


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model dir or Hub repo id with a latent map (repeatable)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--count", type=int, default=1062, help="locations and pairs per set (default: as many as the held-out eyes)")
    args = parser.parse_args(argv)
    features = load_feature_network().eval()
    print(f"Machine: {machine()}; commit {git_commit()}.\n")
    print("| model | latents | Frechet distance to real eyes | fine detail / real | mean norm of z |")
    print("|---|---|---:|---:|---:|")
    held_out_eyes = {}  # (image size, channels) -> the held-out eyes, their features and fine detail: read once for all models
    for name in args.model:
        model, latent_map = load_model(name)
        if latent_map is None:
            parser.error(f"{name} has no latent map")
        model = model.float().eval()
        shape = (model.config.image_size, model.config.channels)
        if shape not in held_out_eyes:
            data = load_dataset(args.data_dir, image_size=shape[0], channels=shape[1], cache_dir=args.cache_dir)
            held_out = select_split(data, "val+test").images
            x = to_float(held_out)
            held_out_eyes[shape] = (held_out, torch.cat([features(batch) for batch in x.split(256)]), laplacian_variance(x).mean().item())
        held_out, real, real_detail = held_out_eyes[shape]
        rows = []
        locations = click_locations(latent_map.xy, args.count)
        for k, power in BLENDS:
            what = "map click: the nearest eye" if k == 1 else f"map click: blend of {k}, weights 1 / distance^{power:g}"
            if (k, power) == (BLEND_NEIGHBOURS, BLEND_POWER):
                what += " (the page's)"
            rows.append((what, blend_latents(latent_map, locations, k, power)))
        mu = encode_images(model, held_out)
        for t in (0.25, 0.5):
            for spherical in (True, False):
                how = "slerp (the page's)" if spherical else "linear"
                rows.append((f"held-out pair, t = {t}: {how}", path_latents(mu, args.count, t, spherical)))
        for what, z in rows:
            s = score(model, features, real, real_detail, z)
            print(f"| {name} | {what} | {s['fd']:.3f} | {s['detail']:.3f} | {s['norm']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
