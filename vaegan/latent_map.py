"""The latent map: encoder means of a set of eyes, their 2-D UMAP coordinates and labels.

Built once after training from the train split (UMAP is fitted only here, in `fit_umap`, and
imported only when fitting), stored as safetensors beside the model, and read by the app
without the dataset. It also stores a linear open / closed probe on the latent, the
closed -> open direction, and a Gaussian mixture fitted to the latents that the page can
draw new eyes from (ex-post density estimation, Ghosh et al. 2020).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from vaegan.data import to_float
from vaegan.networks import VAEGAN

logger = logging.getLogger(__name__)

FILENAME = "latent_map.safetensors"
BLEND_NEIGHBOURS = 3  # map points a click on empty space blends (the page's)
BLEND_POWER = 2.0  # their weights: inverse distance to this power
MIXTURE_COMPONENTS = 10  # as in Ghosh et al. 2020


@dataclass
class LatentMap:
    """mu (N, Z), xy (N, 2), labels (N,) 0 closed / 1 open, and the probe / direction on the latent."""

    mu: np.ndarray
    xy: np.ndarray
    labels: np.ndarray
    probe_weight: np.ndarray  # (Z,) logistic regression: P(open) = sigmoid(mu @ w + b)
    probe_bias: np.ndarray  # (1,)
    open_direction: np.ndarray  # (Z,) mean(mu | open) - mean(mu | closed)
    # a Gaussian mixture on mu (None in maps made before it): component weights (K,), means (K, Z), Cholesky factors (K, Z, Z)
    mixture_weights: np.ndarray | None = None
    mixture_means: np.ndarray | None = None
    mixture_scale_tril: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def has_mixture(self) -> bool:
        return self.mixture_weights is not None

    def save(self, directory: str | os.PathLike) -> Path:
        """Write latent_map.safetensors into directory."""
        path = Path(directory) / FILENAME
        tensors = {name: np.ascontiguousarray(value) for name, value in vars(self).items() if value is not None}
        save_file(tensors, str(path))
        return path

    def sample_mixture(self, n: int, generator: torch.Generator) -> np.ndarray:
        """n latents (n, Z) drawn from the mixture, seeded by `generator`: a component by its weight, then its Gaussian."""
        if not self.has_mixture:
            raise ValueError("this latent map has no mixture (made before maps had one): sample from the prior")
        weights, means, scale_tril = (torch.as_tensor(a, dtype=torch.float64) for a in (self.mixture_weights, self.mixture_means, self.mixture_scale_tril))
        component = torch.multinomial(weights, n, replacement=True, generator=generator)  # (n,)
        noise = torch.randn(n, means.shape[1], 1, generator=generator, dtype=torch.float64)
        return (means[component] + (scale_tril[component] @ noise)[..., 0]).float().numpy()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatentMap":
        """Read a latent map from a file or a model directory, checking shapes."""
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        try:
            tensors = load_file(str(path))
        except SafetensorError as error:  # a damaged or foreign file: say which, never parse further
            raise ValueError(f"{path}: not a safetensors file ({error})") from error
        required = {name for name, field in cls.__dataclass_fields__.items() if not name.startswith("mixture_")}
        missing = required - set(tensors)
        if missing:
            raise ValueError(f"{path}: not a latent map (missing {', '.join(sorted(missing))})")
        arrays = {name: tensors[name] for name in cls.__dataclass_fields__ if name in tensors}
        arrays = {name: a.astype(np.float32) if a.dtype.kind == "f" else a for name, a in arrays.items()}  # fp16 bundles
        latent_map = cls(**arrays)
        n, z = latent_map.mu.shape
        if latent_map.xy.shape != (n, 2) or latent_map.labels.shape != (n,) or latent_map.probe_weight.shape != (z,):
            raise ValueError(f"{path}: inconsistent shapes in latent map")
        mixture = [latent_map.mixture_weights, latent_map.mixture_means, latent_map.mixture_scale_tril]
        if any(a is not None for a in mixture):
            k = len(mixture[0]) if mixture[0] is not None else 0
            shapes = [(k,), (k, z), (k, z, z)]
            if k == 0 or any(a is None or a.shape != shape for a, shape in zip(mixture, shapes)) or not all(np.isfinite(a).all() for a in mixture) \
                    or (mixture[0] < 0).any() or abs(mixture[0].sum() - 1) > 1e-3:
                raise ValueError(f"{path}: inconsistent Gaussian mixture in latent map")
        return latent_map

    def predict_open(self, mu: np.ndarray) -> np.ndarray:
        """Probability that each latent (B, Z) is an open eye, from the stored linear probe."""
        logits = mu @ self.probe_weight + self.probe_bias[0]
        return 1.0 / (1.0 + np.exp(-logits))

    def place(self, mu: np.ndarray, k: int = 8) -> np.ndarray:
        """Map coordinates for new latents (B, Z) without refitting UMAP: inverse-distance mean of the k nearest points."""
        distances = np.sqrt(((mu[:, None, :] - self.mu[None, :, :]) ** 2).sum(-1))  # (B, N)
        nearest = np.argsort(distances, axis=1)[:, :k]
        weights = 1.0 / (np.take_along_axis(distances, nearest, axis=1) + 1e-6)
        return (self.xy[nearest] * weights[..., None]).sum(1) / weights.sum(1, keepdims=True)

    def latent_at(self, x: float, y: float, k: int = BLEND_NEIGHBOURS, power: float = BLEND_POWER) -> tuple[np.ndarray, np.ndarray]:
        """The reverse of `place`: a latent for a map location, the mean of the mu of its k nearest points weighted by
        inverse distance to the given power.

        Few points and a steep weight keep the blend near real eyes: a mean of many latents decodes to a softer,
        averaged eye (benchmarks/page_latents.py). Returns (z (Z,), the indices of those points).
        """
        distances = np.hypot(self.xy[:, 0] - x, self.xy[:, 1] - y)  # (N,)
        k = min(k, len(distances))
        nearest = np.argpartition(distances, k - 1)[:k]
        weights = 1.0 / (distances[nearest] + 1e-6) ** power
        z = (self.mu[nearest] * weights[:, None]).sum(0) / weights.sum()
        return z.astype(np.float32), nearest

    def nearest(self, z: np.ndarray) -> int:
        """Index of the map point whose mu is nearest to z (Z,)."""
        return int(np.argmin(((self.mu - z[None]) ** 2).sum(1)))


@torch.no_grad()
def encode_images(model: VAEGAN, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Encoder means of uint8 images (N, C, H, W), in eval mode: (N, Z) float32."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model.encode(to_float(batch.to(device)))[0].float().cpu() for batch in images.split(batch_size)]
    return torch.cat(chunks).numpy()


def fit_umap(mu: np.ndarray, seed: int = 0):
    """UMAP to 2-D fitted on latents (N, Z), seeded: the one place the project fits it. Returns the fitted reducer.

    Its `embedding_` holds the N points' coordinates; its `transform` places new latents.
    """
    import umap  # slow to import (numba): only when fitting

    neighbours = max(2, min(15, len(mu) - 1))
    reducer = umap.UMAP(n_neighbors=neighbours, min_dist=0.1, random_state=seed, init="spectral" if len(mu) > 50 else "random")
    with warnings.catch_warnings():  # a seeded UMAP runs single-threaded, and says so on every call
        warnings.filterwarnings("ignore", message="n_jobs value .* overridden")
        reducer.fit(mu)
    return reducer


def build_latent_map(
    model: VAEGAN, images: torch.Tensor, labels: torch.Tensor, size: int = 5000, seed: int = 0
) -> LatentMap:
    """Encode up to `size` images (a seeded random subset), fit UMAP to 2-D and the open / closed probe.

    train.py passes the train split (vaegan.pipeline): the map never holds a held-out eye.
    """
    from sklearn.linear_model import LogisticRegression

    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(labels), generator=generator)[:size]
    mu = encode_images(model, images[index])
    y = labels[index].numpy().astype(np.int64)
    logger.info("fitting UMAP on %d latents", len(y))
    xy = fit_umap(mu, seed).embedding_.astype(np.float32)
    probe = LogisticRegression(max_iter=2000, C=1.0).fit(mu, y)
    return LatentMap(
        mu=mu.astype(np.float32),
        xy=xy,
        labels=y,
        probe_weight=probe.coef_[0].astype(np.float32),
        probe_bias=probe.intercept_.astype(np.float32),
        open_direction=open_direction(mu, y),
        **fit_mixture(mu, seed=seed),
    )


def open_direction(mu: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The page's slider direction: mean(mu | open) - mean(mu | closed), (Z,) float32."""
    return (mu[labels == 1].mean(0) - mu[labels == 0].mean(0)).astype(np.float32)


def fit_mixture(mu: np.ndarray, components: int = MIXTURE_COMPONENTS, seed: int = 0) -> dict[str, np.ndarray]:
    """A full-covariance Gaussian mixture fitted to latents (N, Z): the LatentMap's mixture_* fields ({} for N < 2K).

    Ghosh et al. 2020 ("From variational to deterministic autoencoders", ex-post density estimation):
    prior draws land where no training eye's latent is, and decode to mottled non-eyes; draws from a
    density fitted to the training latents land among them. On the bundled model it took the samples'
    Frechet distance from 2.07 to 0.42 (BENCHMARKS.md).
    """
    from sklearn.mixture import GaussianMixture

    components = min(components, len(mu) // 2)
    if components < 1:
        return {}
    fitted = GaussianMixture(components, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(mu.astype(np.float64))
    return {
        "mixture_weights": fitted.weights_.astype(np.float32),
        "mixture_means": fitted.means_.astype(np.float32),
        "mixture_scale_tril": np.linalg.cholesky(fitted.covariances_).astype(np.float32),
    }


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation from a (Z,) to b (Z,) at fractions t (T,) -> (T, Z); linear when a, b are parallel.

    White, "Sampling Generative Networks", 2016: under a Gaussian prior, slerp keeps the
    intermediate latents at a typical norm, where linear interpolation passes near the
    origin and decodes washed-out images.
    """
    t = np.asarray(t, dtype=np.float64)[:, None]  # (T, 1)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cosine = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
    omega = np.arccos(np.clip(cosine, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        out = (1 - t) * a64 + t * b64
    else:
        out = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    out[t[:, 0] == 0] = a64  # exact endpoints, free of rounding
    out[t[:, 0] == 1] = b64
    return out.astype(np.float32)
