"""The evaluation suite: every metric of a trained model on held-out eyes, and the `evaluate` command.

Reconstruction (MSE, PSNR, SSIM and sharpness, the last two also per source, Frechet distance), prior samples (Frechet distance,
KID, sharpness), samples of the map's latent mixture (Frechet distance, sharpness), latent structure (linear probe, kNN on the 2-D map, active units) and the
page's open <-> closed edit. The single metrics live in `vaegan.metrics`. Sample quality is
measured on the features of a small frozen eye-state CNN (`vaegan.eye_features`) instead of
Inception (whose weights can't be fetched offline, and which knows nothing of eyes); numbers
are comparable between runs that use the same feature file.

    python -m vaegan.evaluate --model runs/x/model --data-dir DIR [--json FILE] [--features FILE]   # or vaegan-evaluate
    python -m vaegan.evaluate fit-features --data-dir DIR --out FILE   # = python -m vaegan.eye_features: make the feature file
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vaegan import eye_features
from vaegan.data import DataError, EyeData, class_of, load_dataset, split_of, to_float
from vaegan.eye_features import DEFAULT_FEATURES, EyeFeatureNet, load_feature_network, predict_labels
from vaegan.hub import HubError, load_model
from vaegan.latent_map import LatentMap, encode_images, fit_umap, open_direction
from vaegan.metrics import active_units, feature_distances, knn_accuracy_2d, laplacian_variance, probe_scores, reconstruction_scores
from vaegan.networks import toward_other_state

logger = logging.getLogger(__name__)

SPLITS = ("held-out", "val", "test", "val+test")
PROBE_IMAGES = 20_000  # train latents the probe (and the UMAP fallback) is fitted on, at most


def map_coordinates(
    mu_test: np.ndarray, latent_map: LatentMap | None, mu_train: np.ndarray, y_train: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xy of reference points, their labels, xy of the test latents) for the 2-D kNN.

    With the model's latent map: its points, test latents placed as the app places an uploaded
    eye (LatentMap.place). train.py builds the map from the train split only, so no held-out eye
    is on it; maps made before that rule (the bundled demo model's, drawn from every split) may
    hold some, and any map point whose latent equals a test latent is left out (logged), so that
    a held-out eye never votes for itself. Without a map: UMAP (`fit_umap`, as for a map) fitted
    on up to 5000 train latents, test latents placed by UMAP's own transform.
    """
    if latent_map is not None and latent_map.mu.shape[1] == mu_test.shape[1]:
        keep = np.ones(len(latent_map), dtype=bool)
        for chunk in np.array_split(np.arange(len(mu_test)), max(1, len(mu_test) // 64)):
            distances = ((latent_map.mu[None, :, :] - mu_test[chunk, None, :]) ** 2).sum(-1)  # (b, N)
            keep &= ~(distances < 1e-8).any(0)
        if keep.sum() >= 2 and len(np.unique(latent_map.labels[keep])) == 2:
            if not keep.all():
                logger.info("2-D kNN: %d of the map's %d points are held-out eyes (a map made before maps held train eyes only): left out", (~keep).sum(), len(keep))
            reference = LatentMap(
                latent_map.mu[keep], latent_map.xy[keep], latent_map.labels[keep],
                latent_map.probe_weight, latent_map.probe_bias, latent_map.open_direction,
            )
            xy_test = np.concatenate([reference.place(chunk) for chunk in np.array_split(mu_test, max(1, len(mu_test) // 32))])
            return reference.xy, reference.labels, xy_test
        logger.warning("the latent map is unsuitable for the kNN (too few points outside the test set); fitting UMAP")
    elif latent_map is not None:
        logger.warning("the latent map has %d dims, the model %d; fitting UMAP", latent_map.mu.shape[1], mu_test.shape[1])
    index = np.random.default_rng(seed).permutation(len(mu_train))[:5000]
    reducer = fit_umap(mu_train[index], seed)
    return reducer.embedding_, y_train[index], reducer.transform(mu_test)


# ---------------------------------------------------------------------- everything
def source_index(paths: list[str]) -> dict[str, torch.Tensor]:
    """The images of each source, where the eyes come from several: top-level folders that name no split or class.

    The pooled sharpness ratio is a sum over all eyes, so the source with the most fine detail dominates it (on
    `../shared/data` the drowsiness crops carry about 20x the Laplacian energy of CEW's 24 px patches): the
    ratio and SSIM per source show which eyes lost their detail, and a sample of the eyes (sample_index) keeps
    each source's share. {} for a single source.
    """
    tops = [path.split("/")[0] if "/" in path else "" for path in paths]
    names = sorted(set(tops))
    if len(names) < 2 or any(not name or split_of(name) or class_of(name) is not None for name in names):
        return {}
    return {name: torch.tensor([i for i, top in enumerate(tops) if top == name]) for name in names}


def sample_index(paths: list[str], size: int, seed: int = 0) -> torch.Tensor:
    """A seeded random sample of `size` of the images (sorted indices), each source (see source_index) in its share."""
    generator = torch.Generator().manual_seed(seed)
    groups = list(source_index(paths).values()) or [torch.arange(len(paths))]
    exact = [size * len(group) / len(paths) for group in groups]
    shares = [max(1, math.floor(share)) for share in exact]  # every source keeps at least one eye
    for i in sorted(range(len(groups)), key=lambda i: shares[i] - exact[i])[: max(0, size - sum(shares))]:
        shares[i] += 1  # the rest to the most under-served sources (largest remainder): `size` in all
    picked = [group[torch.randperm(len(group), generator=generator)[:share]] for group, share in zip(groups, shares)]
    return torch.cat(picked).sort().values


def select_split(data: EyeData, split: str = "held-out") -> EyeData:
    """The evaluation images: 'held-out' (test if present, else val), 'val', 'test' or 'val+test'."""
    if split == "held-out":
        return data.held_out()
    if split in ("val", "test"):
        return data.subset(split)
    if split == "val+test":
        return data.subset("val", "test")
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def prior_samples(model: nn.Module, num_samples: int, seed: int = 0, batch_size: int = 256) -> Iterator[torch.Tensor]:
    """`num_samples` prior samples in batches, clamped to [-1, 1], z from one generator seeded `seed` (evaluate scores seed 0)."""
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for chunk in torch.arange(num_samples).split(batch_size):
        yield model.sample(len(chunk), generator=generator).float().clamp(-1, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: EyeData,
    features: EyeFeatureNet,
    latent_map: LatentMap | None = None,
    *,
    split: str = "val+test",
    num_samples: int | None = None,
    max_images: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """All metrics of `model` on the held-out images of `data` (probe fitted on the train split); see the module docstring.

    `max_images` scores a seeded random sample of the split where it holds more, each source in its share
    (`held_out_images` says how many the split held).
    """
    model.eval()
    features.eval()
    device = next(model.parameters()).device
    features = features.to(device)
    test = select_split(data, split)
    if len(test) < 2:
        raise ValueError(f"need at least 2 images in the '{split}' split to evaluate, found {len(test)}")
    held_out_images = len(test)
    if max_images is not None and max_images < 2:
        raise ValueError(f"max_images must be at least 2, got {max_images}")
    if max_images is not None and len(test) > max_images:
        index = sample_index(test.paths, max_images, seed)
        test = EyeData(test.images[index], test.labels[index], test.splits[index], [test.paths[i] for i in index.tolist()])
        logger.info("scoring a seeded sample of %d of the %d '%s' images", len(test), held_out_images, split)
    size, channels = model.config.image_size, model.config.channels
    if (features.config.image_size, features.config.channels) != (size, channels) or test.images.shape[1:] != (channels, size, size):
        raise ValueError(
            f"image shapes disagree: model {channels}x{size}x{size}, feature CNN "
            f"{features.config.channels}x{features.config.image_size}x{features.config.image_size}, data {tuple(test.images.shape[1:])}"
        )
    started = time.perf_counter()

    # 1. held-out pass: latents, reconstructions of mu, eye-CNN features and predictions (one CNN pass per image)
    sums = {"mse": 0.0, "psnr": 0.0, "detail_sample": 0.0}
    ssim, detail_real, detail_rec = [], [], []  # per image: SSIM and the sharpness ratios are also given per source
    mu_chunks, features_real, features_rec, predicted_real, predicted_rec = [], [], [], [], []
    for batch in test.images.split(batch_size):
        x = to_float(batch.to(device))  # (B, C, H, W)
        mu, _ = model.encode(x)
        x_rec = model.decode(mu).float().clamp(-1, 1)
        scores = reconstruction_scores(x, x_rec)
        sums["mse"] += scores["mse"].sum().item()
        sums["psnr"] += scores["psnr"].sum().item()
        ssim.append(scores["ssim"].cpu())
        detail_real.append(laplacian_variance(x).cpu())
        detail_rec.append(laplacian_variance(x_rec).cpu())
        mu_chunks.append(mu.float().cpu())
        features_real.append(features(x))
        features_rec.append(features(x_rec))
        predicted_real.append(features.head(features_real[-1]).argmax(1).cpu())
        predicted_rec.append(features.head(features_rec[-1]).argmax(1).cpu())
    mu_test = torch.cat(mu_chunks).numpy()
    y_test = test.labels.numpy()
    n = len(test)

    # 2. prior samples, from an explicit generator so every run draws the same z
    num_samples = num_samples or n
    features_fake = []
    for samples in prior_samples(model, num_samples, seed, batch_size):
        sums["detail_sample"] += laplacian_variance(samples).sum().item()
        features_fake.append(features(samples))
    features_real = torch.cat(features_real)
    quality = feature_distances(features_real, torch.cat(features_fake), seed=seed)
    mixture_samples = None  # the page's default samples: draws from the Gaussian mixture fitted to the training eyes' latents
    if latent_map is not None and latent_map.has_mixture and latent_map.mixture_means.shape[1] == mu_test.shape[1]:
        z_mixture = torch.as_tensor(latent_map.sample_mixture(num_samples, torch.Generator().manual_seed(seed)))
        mixture_samples = torch.cat([model.decode(z.to(device)).float().clamp(-1, 1) for z in z_mixture.split(batch_size)])
    recon_frechet = feature_distances(features_real, torch.cat(features_rec), seed=seed)["frechet_distance"]
    ssim, detail_real, detail_rec = torch.cat(ssim).double(), torch.cat(detail_real).double(), torch.cat(detail_rec).double()
    real_mean = max(detail_real.mean().item(), 1e-12)
    mixture = {}
    if mixture_samples is not None:
        features_mixture = torch.cat([features(chunk) for chunk in mixture_samples.split(batch_size)])
        mixture = {
            "mixture_frechet_distance": max(0.0, feature_distances(features_real, features_mixture, seed=seed)["frechet_distance"]),
            "mixture_sample_sharpness": laplacian_variance(mixture_samples).mean().item() / real_mean,
        }

    # 3. latent structure: linear probe on mu (train -> held-out), kNN on the 2-D map, active units
    train = data.subset("train")
    if len(train):
        # a seeded subset on large sets: 20k latents pin down a 64-d linear probe, and the Kaggle split is 140k
        index = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:PROBE_IMAGES].sort().values
        mu_train, y_train = encode_images(model, train.images[index], batch_size=batch_size), train.labels[index].numpy()
        probe_accuracy, probe_balanced = probe_scores(mu_train, y_train, mu_test, y_test)
    else:
        logger.warning("no train split: the probe and the UMAP fallback are skipped")
        mu_train, y_train = np.zeros((0, mu_test.shape[1]), np.float32), np.zeros(0, np.int64)
        probe_accuracy = probe_balanced = math.nan
    if latent_map is not None or len(train) > 15:
        xy_ref, y_ref, xy_test = map_coordinates(mu_test, latent_map, mu_train, y_train, seed=seed)
        knn = knn_accuracy_2d(xy_ref, y_ref, xy_test, y_test)
    else:
        knn = math.nan

    # 4. the page's slider: each eye moved one class-mean difference toward the other state, read by the eye CNN
    if latent_map is not None and latent_map.open_direction.shape[0] == mu_test.shape[1]:
        direction = torch.as_tensor(latent_map.open_direction, dtype=torch.float32)
    elif len(np.unique(y_train)) == 2:
        direction = torch.as_tensor(open_direction(mu_train, y_train))
    else:
        direction = None
    labels = test.labels
    edit_flip = math.nan
    if direction is not None:
        moved = toward_other_state(torch.as_tensor(mu_test), labels, direction)  # open -> closed, closed -> open
        edited = torch.cat([model.decode(z.to(device)).float().clamp(-1, 1) for z in moved.split(batch_size)])
        edit_flip = (predict_labels(features, edited).cpu() == 1 - labels).float().mean().item()

    sources = source_index(test.paths)
    metrics = {
        "recon_mse": sums["mse"] / n,
        "recon_psnr": sums["psnr"] / n,
        "recon_ssim": ssim.mean().item(),
        **{f"recon_ssim[{source}]": ssim[index].mean().item() for source, index in sources.items()},
        "recon_sharpness": detail_rec.mean().item() / real_mean,
        **{
            f"recon_sharpness[{source}]": detail_rec[index].mean().item() / max(detail_real[index].mean().item(), 1e-12)
            for source, index in sources.items()
        },
        "sample_sharpness": sums["detail_sample"] / num_samples / real_mean,
        "recon_frechet_distance": max(0.0, recon_frechet),
        **quality,
        **mixture,
        "probe_accuracy": probe_accuracy,
        "probe_balanced_accuracy": probe_balanced,
        "knn_accuracy": knn,
        "active_units": active_units(mu_test),
        "latent_dim": mu_test.shape[1],
        "label_preservation": (torch.cat(predicted_rec) == labels).float().mean().item(),
        "edit_flip": edit_flip,
        "feature_cnn_accuracy": (torch.cat(predicted_real) == labels).float().mean().item(),
        "eval_images": n,
        "held_out_images": held_out_images,
        "prior_samples": num_samples,
    }
    logger.info("evaluated %d held-out images and %d samples in %.1f s", n, num_samples, time.perf_counter() - started)
    return metrics


def format_table(metrics: dict[str, float]) -> str:
    """Two-column text table of the metrics."""
    width = max(map(len, metrics))
    return "\n".join(f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}" for name, value in metrics.items())


# ---------------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    """The flags of `python -m vaegan.evaluate` / `vaegan-evaluate`."""
    parser = argparse.ArgumentParser(
        prog="python -m vaegan.evaluate",
        description="Evaluate a model dir on held-out eyes.",
        epilog="The eye-feature CNN file that the Frechet distance, KID, label preservation and edit flip use is made by "
        "`python -m vaegan.evaluate fit-features --data-dir DIR --out FILE` (the same as `python -m vaegan.eye_features`; "
        "`fit-features --help` for its flags).",
    )
    parser.add_argument("--model", required=True, help="model dir (config.json, model.safetensors, optional latent_map.safetensors) or Hub repo id")
    parser.add_argument("--data-dir", required=True, help="folder of eye crops (the one the model was trained on)")
    parser.add_argument("--json", default=None, help="write the metrics to this JSON file")
    parser.add_argument("--features", default=str(DEFAULT_FEATURES), help="eye-feature CNN file (default: %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="decoded-image cache (default ~/.cache/vaegan)")
    parser.add_argument("--split", default="val+test", choices=SPLITS, help="images to score: val+test (default: every held-out eye; the model card scores up to 5,000 of them), held-out (test, else val), val or test")
    parser.add_argument("--num-samples", type=int, default=None, help="prior samples for the Frechet distance / KID (default: as many as the images scored)")
    parser.add_argument("--max-images", type=int, default=None, help="score a seeded sample of at most this many of the split's images (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split (as in training), of the sample of images and of the prior samples")
    return parser


def main_evaluate(argv: list[str] | None = None) -> int:
    """`python -m vaegan.evaluate --model DIR --data-dir DIR`: log the metrics table, optionally write JSON."""
    cli = parser()
    args = cli.parse_args(argv)
    if args.max_images is not None and args.max_images < 2:
        cli.error(f"--max-images must be at least 2, got {args.max_images}")  # before minutes of data loading
    model, latent_map = load_model(args.model)  # a model dir or a Hub repo id, with its latent map when it has one
    features = load_feature_network(args.features)
    data = load_dataset(args.data_dir, image_size=model.config.image_size, channels=model.config.channels, seed=args.seed, cache_dir=args.cache_dir)
    metrics = evaluate(model, data, features, latent_map, split=args.split, num_samples=args.num_samples, max_images=args.max_images, seed=args.seed)
    logger.info("metrics of %s on %d '%s' images:\n%s", args.model, metrics["eval_images"], args.split, format_table(metrics))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n")
        logger.info("wrote %s", args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch: `fit-features ...` (vaegan.eye_features) or the evaluation flags; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "fit-features":
        return eye_features.main(argv[1:])
    try:
        return main_evaluate(argv)
    except (ValueError, FileNotFoundError, DataError, HubError) as error:
        logger.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
