"""Single metrics of images and latents: reconstruction scores, sharpness, active units, probes, Frechet distance / KID.

Each is a plain function of tensors or arrays, used by the evaluation suite (`vaegan.evaluate`)
and, for the active units, by the Trainer's per-epoch validation.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016 (IWAE), section 5.2: a unit is active when Var_x(E_q[z_u]) > 0.01
PSNR_CAP_DB = 100.0  # a perfect reconstruction would be +inf dB, which JSON can't hold


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
    mu = torch.as_tensor(mu).detach().to("cpu", torch.float64)
    return int((mu.var(dim=0) > threshold).sum().item()) if len(mu) > 1 else 0


def make_probe():
    """The model card's linear probe (unfitted): standardised latents, then logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))


def probe_scores(mu_train: np.ndarray, y_train: np.ndarray, mu_test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
    """Accuracy and balanced accuracy of the card's probe (`make_probe`) fitted on the train latents."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    if len(np.unique(y_train)) < 2 or len(y_test) == 0:
        return math.nan, math.nan
    probe = make_probe().fit(mu_train, y_train)
    predicted = probe.predict(mu_test)
    return float(accuracy_score(y_test, predicted)), float(balanced_accuracy_score(y_test, predicted))


def knn_accuracy_2d(xy_train: np.ndarray, y_train: np.ndarray, xy_test: np.ndarray, y_test: np.ndarray, k: int = 10) -> float:
    """Accuracy of a k-nearest-neighbour vote on 2-D map coordinates."""
    from sklearn.neighbors import KNeighborsClassifier

    if len(y_train) == 0 or len(y_test) == 0:
        return math.nan
    knn = KNeighborsClassifier(n_neighbors=min(k, len(y_train))).fit(xy_train, y_train)
    return float((knn.predict(xy_test) == y_test).mean())


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
