"""Metrics of a trained model on held-out eyes: reconstruction, sample quality, latent structure.

Sample quality is a Frechet distance and a KID between real held-out eyes and prior samples,
computed on the features of a small frozen eye-state CNN (`EyeFeatureNet`) instead of
Inception (whose weights can't be fetched offline, and which knows nothing of eyes). The
CNN is trained once on real crops (`python -m vaegan.evaluate fit-features`) and saved as
safetensors, so numbers stay comparable across runs as long as the same file is used.

    python -m vaegan.evaluate --model runs/x/model --data-dir DIR [--json FILE] [--features FILE]
    python -m vaegan.evaluate fit-features --data-dir DIR --out assets/eye_features.safetensors
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vaegan.data import DataError, EyeData, to_float
from vaegan.eye_features import (
    DEFAULT_FEATURES,
    EyeFeatureNet,
    feature_accuracy,
    fit_feature_network,
    load_feature_network,
    predict_labels,
    save_feature_network,
)
from vaegan.hub import HubError, load_model
from vaegan.latent_map import LatentMap, encode_images

logger = logging.getLogger(__name__)

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016 (IWAE), section 5.2: a unit is active when Var_x(E_q[z_u]) > 0.01
PSNR_CAP_DB = 100.0  # a perfect reconstruction would be +inf dB, which JSON can't hold
SPLITS = ("held-out", "val", "test", "val+test")
PROBE_IMAGES = 20_000  # train latents the probe (and the UMAP fallback) is fitted on, at most


# ---------------------------------------------------------------------- single metrics
def reconstruction_scores(x: torch.Tensor, x_rec: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image MSE, PSNR (dB, capped) and SSIM (B,) of float images in [-1, 1], measured on [0, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    target, preds = (x.float() + 1) / 2, (x_rec.float().clamp(-1, 1) + 1) / 2
    mse = (preds - target).pow(2).flatten(1).mean(1)
    psnr = (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_CAP_DB / 10))))  # data range 1
    ssim = structural_similarity_index_measure(preds, target, data_range=1.0, reduction="none")
    return {"mse": mse, "psnr": psnr, "ssim": ssim}


def laplacian_variance(x: torch.Tensor) -> torch.Tensor:
    """Per-image variance of the 3x3 Laplacian response (B,), of float images in [-1, 1] measured on [0, 1]: fine detail.

    The variance-of-Laplacian focus measure (Pech-Pacheco et al. 2000): blur lowers it, noise and
    grid artefacts raise it. Channels are averaged first.
    """
    gray = (x.float().mean(1, keepdim=True) + 1) / 2  # (B, 1, H, W)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=x.device).view(1, 1, 3, 3)
    response = torch.nn.functional.conv2d(gray, kernel)  # (B, 1, H-2, W-2): valid part only, no border effect
    return response.flatten(1).var(dim=1)


def sharpness_ratio(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean Laplacian variance of `x` over that of `reference`: 1 = as much fine detail, < 1 blurrier, > 1 noisier."""
    return (laplacian_variance(x).mean() / laplacian_variance(reference).mean().clamp_min(1e-12)).item()


def active_units(mu: np.ndarray | torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Latent dims whose posterior mean varies across inputs: Var_x(mu_u) > threshold (Burda et al. 2016)."""
    mu = torch.as_tensor(np.asarray(mu), dtype=torch.float64)
    return int((mu.var(dim=0) > threshold).sum().item()) if len(mu) > 1 else 0


def probe_scores(mu_train: np.ndarray, y_train: np.ndarray, mu_test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
    """Accuracy and balanced accuracy of a logistic-regression probe fitted on the train latents."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2 or len(y_test) == 0:
        return math.nan, math.nan
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(mu_train, y_train)
    predicted = probe.predict(mu_test)
    return float(accuracy_score(y_test, predicted)), float(balanced_accuracy_score(y_test, predicted))


def knn_accuracy_2d(xy_train: np.ndarray, y_train: np.ndarray, xy_test: np.ndarray, y_test: np.ndarray, k: int = 10) -> float:
    """Accuracy of a k-nearest-neighbour vote on 2-D map coordinates."""
    from sklearn.neighbors import KNeighborsClassifier

    if len(y_train) == 0 or len(y_test) == 0:
        return math.nan
    knn = KNeighborsClassifier(n_neighbors=min(k, len(y_train))).fit(xy_train, y_train)
    return float((knn.predict(xy_test) == y_test).mean())


def map_coordinates(
    mu_test: np.ndarray, latent_map: LatentMap | None, mu_train: np.ndarray, y_train: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xy of reference points, their labels, xy of the test latents) for the 2-D kNN.

    With the model's latent map: its points, minus any whose latent equals a test latent (the
    map is drawn from every split, and a held-out eye must not vote for itself); test latents
    are placed as the app places an uploaded eye (LatentMap.place). Without one: UMAP fitted
    on (up to 5000) train latents, test latents placed by UMAP's own transform.
    """
    if latent_map is not None and latent_map.mu.shape[1] == mu_test.shape[1]:
        keep = np.ones(len(latent_map), dtype=bool)
        for chunk in np.array_split(np.arange(len(mu_test)), max(1, len(mu_test) // 64)):
            distances = ((latent_map.mu[None, :, :] - mu_test[chunk, None, :]) ** 2).sum(-1)  # (b, N)
            keep &= ~(distances < 1e-8).any(0)
        if keep.sum() >= 2 and len(np.unique(latent_map.labels[keep])) == 2:
            logger.info("2-D kNN on the model's latent map: %d points (%d equal to test latents left out)", keep.sum(), (~keep).sum())
            reference = LatentMap(
                latent_map.mu[keep], latent_map.xy[keep], latent_map.labels[keep],
                latent_map.probe_weight, latent_map.probe_bias, latent_map.open_direction,
            )
            xy_test = np.concatenate([reference.place(chunk) for chunk in np.array_split(mu_test, max(1, len(mu_test) // 32))])
            return reference.xy, reference.labels, xy_test
        logger.warning("the latent map is unsuitable for the kNN (too few points outside the test set); fitting UMAP")
    elif latent_map is not None:
        logger.warning("the latent map has %d dims, the model %d; fitting UMAP", latent_map.mu.shape[1], mu_test.shape[1])
    import umap  # slow to import (numba): only when no map is given

    index = np.random.default_rng(seed).permutation(len(mu_train))[:5000]
    reducer = umap.UMAP(n_neighbors=min(15, len(index) - 1), min_dist=0.1, random_state=seed)
    with warnings.catch_warnings():  # a seeded UMAP runs single-threaded, and says so on every call
        warnings.filterwarnings("ignore", message="n_jobs value .* overridden")
        xy_train = reducer.fit_transform(mu_train[index])
    return xy_train, y_train[index], reducer.transform(mu_test)


class _Precomputed(nn.Module):
    """A torchmetrics feature extractor that passes features computed beforehand straight through."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features  # read by torchmetrics instead of a dummy forward pass

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def feature_distances(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Frechet distance and KID (mean, std) between two sets of feature vectors (N, F) and (M, F)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    extractor = _Precomputed(real.shape[1])
    # subsets of half the smaller set, so that the 100 subsets differ and kid_std means something
    subset_size = min(1000, max(2, min(len(real), len(fake)) // 2))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        fid = FrechetInceptionDistance(feature=extractor, sync_on_compute=False).to(real.device)
        kid = KernelInceptionDistance(feature=extractor, subset_size=subset_size, sync_on_compute=False).to(real.device)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global RNG
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"frechet_distance": max(0.0, fid.compute().item()), "kid": kid_mean.item(), "kid_std": kid_std.item()}


@torch.no_grad()
def sample_quality(
    features: EyeFeatureNet, real: list[torch.Tensor], fake: list[torch.Tensor], seed: int = 0
) -> dict[str, float]:
    """Frechet distance and KID between two sets of float image batches, on the eye CNN's `features`."""
    features.eval()
    return feature_distances(torch.cat([features(b) for b in real]), torch.cat([features(b) for b in fake]), seed=seed)


# ---------------------------------------------------------------------- everything
def select_split(data: EyeData, split: str = "held-out") -> EyeData:
    """The evaluation images: 'held-out' (test if present, else val), 'val', 'test' or 'val+test'."""
    if split == "held-out":
        return data.held_out()
    if split in ("val", "test"):
        return data.subset(split)
    if split == "val+test":
        keep = data.splits > 0
        index = keep.nonzero().squeeze(1).tolist()
        return EyeData(data.images[keep], data.labels[keep], data.splits[keep], [data.paths[i] for i in index], data.root)
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: EyeData,
    features: EyeFeatureNet,
    latent_map: LatentMap | None = None,
    *,
    split: str = "held-out",
    num_samples: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """All metrics of `model` on the held-out images of `data` (probe fitted on the train split); see the module docstring."""
    model.eval()
    features.eval()
    device = next(model.parameters()).device
    features = features.to(device)
    test = select_split(data, split)
    if len(test) < 2:
        raise ValueError(f"need at least 2 images in the '{split}' split to evaluate, found {len(test)}")
    size, channels = model.config.image_size, model.config.channels
    if (features.config.image_size, features.config.channels) != (size, channels) or test.images.shape[1:] != (channels, size, size):
        raise ValueError(
            f"image shapes disagree: model {channels}x{size}x{size}, feature CNN "
            f"{features.config.channels}x{features.config.image_size}x{features.config.image_size}, data {tuple(test.images.shape[1:])}"
        )
    started = time.perf_counter()

    # 1. held-out pass: latents, reconstructions of mu, eye-CNN features and predictions (one CNN pass per image)
    sums = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0, "detail_real": 0.0, "detail_rec": 0.0, "detail_sample": 0.0}
    mu_chunks, features_real, features_rec, predicted_real, predicted_rec = [], [], [], [], []
    for batch in test.images.split(batch_size):
        x = to_float(batch.to(device))  # (B, C, H, W)
        mu, _ = model.encode(x)
        x_rec = model.decode(mu).float().clamp(-1, 1)
        for name, values in reconstruction_scores(x, x_rec).items():
            sums[name] += values.sum().item()
        sums["detail_real"] += laplacian_variance(x).sum().item()
        sums["detail_rec"] += laplacian_variance(x_rec).sum().item()
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
    generator = torch.Generator(device=device).manual_seed(seed)
    features_fake = []
    for chunk in torch.arange(num_samples).split(batch_size):
        samples = model.sample(len(chunk), generator=generator).float().clamp(-1, 1)
        sums["detail_sample"] += laplacian_variance(samples).sum().item()
        features_fake.append(features(samples))
    features_real = torch.cat(features_real)
    quality = feature_distances(features_real, torch.cat(features_fake), seed=seed)
    recon_frechet = feature_distances(features_real, torch.cat(features_rec), seed=seed)["frechet_distance"]
    detail_real = max(sums["detail_real"] / n, 1e-12)

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
        direction = torch.as_tensor(mu_train[y_train == 1].mean(0) - mu_train[y_train == 0].mean(0), dtype=torch.float32)
    else:
        direction = None
    labels = test.labels
    edit_flip = math.nan
    if direction is not None:
        moved = torch.as_tensor(mu_test) + torch.where(labels == 1, -1.0, 1.0)[:, None] * direction  # open -> closed, closed -> open
        edited = torch.cat([model.decode(z.to(device)).float().clamp(-1, 1) for z in moved.split(batch_size)])
        edit_flip = (predict_labels(features, edited).cpu() == 1 - labels).float().mean().item()

    metrics = {
        "recon_mse": sums["mse"] / n,
        "recon_psnr": sums["psnr"] / n,
        "recon_ssim": sums["ssim"] / n,
        "recon_sharpness": sums["detail_rec"] / n / detail_real,
        "sample_sharpness": sums["detail_sample"] / num_samples / detail_real,
        "recon_frechet_distance": max(0.0, recon_frechet),
        **quality,
        "probe_accuracy": probe_accuracy,
        "probe_balanced_accuracy": probe_balanced,
        "knn_accuracy": knn,
        "active_units": active_units(mu_test),
        "latent_dim": mu_test.shape[1],
        "label_preservation": (torch.cat(predicted_rec) == labels).float().mean().item(),
        "edit_flip": edit_flip,
        "feature_cnn_accuracy": (torch.cat(predicted_real) == labels).float().mean().item(),
        "eval_images": n,
        "prior_samples": num_samples,
    }
    logger.info("evaluated %d held-out images and %d samples in %.1f s", n, num_samples, time.perf_counter() - started)
    return metrics


def format_table(metrics: dict[str, float]) -> str:
    """Two-column text table of the metrics."""
    width = max(map(len, metrics))
    return "\n".join(f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}" for name, value in metrics.items())


# ---------------------------------------------------------------------- command line
def _load_data(data_dir: str, image_size: int, channels: int, cache_dir: str | None, seed: int) -> EyeData:
    from vaegan.data import load_dataset

    return load_dataset(data_dir, image_size=image_size, channels=channels, seed=seed, cache_dir=cache_dir)


def main_evaluate(argv: list[str] | None = None) -> int:
    """`python -m vaegan.evaluate --model DIR --data-dir DIR`: print the metrics table, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="python -m vaegan.evaluate", description="Evaluate a model dir on held-out eyes.")
    parser.add_argument("--model", required=True, help="model dir (config.json, model.safetensors, optional latent_map.safetensors) or Hub repo id")
    parser.add_argument("--data-dir", required=True, help="folder of eye crops (the one the model was trained on)")
    parser.add_argument("--json", default=None, help="write the metrics to this JSON file")
    parser.add_argument("--features", default=str(DEFAULT_FEATURES), help="eye-feature CNN file (default: %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="decoded-image cache (default ~/.cache/vaegan)")
    parser.add_argument("--split", default="held-out", choices=SPLITS, help="images to score (default: test, else val)")
    parser.add_argument("--num-samples", type=int, default=None, help="prior samples for the Frechet distance / KID (default: as many as held-out images)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data split (as in training) and of the prior samples")
    args = parser.parse_args(argv)
    model, latent_map = load_model(args.model)  # a model dir or a Hub repo id, with its latent map when it has one
    features = load_feature_network(args.features)
    data = _load_data(args.data_dir, model.config.image_size, model.config.channels, args.cache_dir, args.seed)
    metrics = evaluate(model, data, features, latent_map, split=args.split, num_samples=args.num_samples, seed=args.seed)
    print(format_table(metrics))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


def main_fit_features(argv: list[str] | None = None) -> int:
    """`python -m vaegan.evaluate fit-features --data-dir DIR --out FILE`: train and save the eye-state CNN."""
    parser = argparse.ArgumentParser(prog="python -m vaegan.evaluate fit-features", description="Train the frozen eye-state CNN used by the metrics.")
    parser.add_argument("--data-dir", required=True, help="folder of real eye crops")
    parser.add_argument("--out", default=str(DEFAULT_FEATURES), help="feature file to write (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = _load_data(args.data_dir, args.image_size, args.channels, args.cache_dir, args.seed)
    started = time.perf_counter()
    net = fit_feature_network(data, epochs=args.epochs, seed=args.seed)
    accuracy = {split: feature_accuracy(net, data.subset(split)) for split in ("val", "test") if len(data.subset(split))}
    held_out = feature_accuracy(net, data.held_out())
    info = {
        "held_out_accuracy": round(held_out, 4),
        **{f"{split}_accuracy": round(value, 4) for split, value in accuracy.items()},
        "train_images": len(data.subset("train")),
        "data": Path(args.data_dir).resolve().name,
        "epochs": args.epochs,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
        "created": time.strftime("%Y-%m-%d"),
    }
    save_feature_network(net, args.out, info)
    print(format_table({"held_out_accuracy": held_out, **{f"{k}_accuracy": v for k, v in accuracy.items()}}))
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch: `fit-features ...` or the evaluation flags."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] == "fit-features":
            return main_fit_features(argv[1:])
        return main_evaluate(argv)
    except (ValueError, FileNotFoundError, DataError, HubError) as error:
        logger.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
