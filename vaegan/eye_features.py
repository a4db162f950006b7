"""The eye-state CNN whose features score sample quality (Frechet distance, KID) and label preservation.

Inception's weights can't be fetched offline and know nothing of eyes, so the project trains a
small CNN on real eye crops once (the `fit-features` command), freezes it and stores it as
safetensors with its config in the header. Every model compared with the same file gets
comparable numbers.

    python -m vaegan.eye_features --data-dir DIR --out assets/eye_features.safetensors
    python -m vaegan.evaluate fit-features --data-dir DIR --out ...   # the same command, as `vaegan-evaluate fit-features`
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from vaegan import asset_path
from vaegan.data import DataError, EyeData, load_dataset, to_float

logger = logging.getLogger(__name__)

DEFAULT_FEATURES = asset_path("eye_features.safetensors")
FEATURE_FORMAT = "vaegan-eye-features"
FEATURE_VERSION = "1"


@dataclass
class FeatureConfig:
    """Architecture of the eye-state CNN; stored in the feature file's header."""

    image_size: int = 64
    channels: int = 1
    widths: list[int] = field(default_factory=lambda: [32, 64, 64, 64])  # 3x3 conv, BatchNorm, ReLU, 2x2 max-pool each


class EyeFeatureNet(nn.Module):
    """x (B, C, H, W) in [-1, 1] -> features (B, F): globally pooled conv features; `logits` adds a linear open / closed head."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_channels = config.channels
        for width in config.widths:
            # BatchNorm: 3x faster convergence here; frozen in eval mode, so features never depend on the batch
            layers += [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            in_channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(in_channels, 2)
        self.num_features = in_channels  # read by torchmetrics instead of a dummy forward pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))  # (B, F)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Open / closed logits (B, 2); class 1 = open, as in vaegan.data."""
        return self.head(self(x))


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, small shifts / zooms and brightness / contrast changes, all from one generator."""
    n = len(x)
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2  # zoom 0.9 .. 1.1
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.2  # up to 5 % of the side
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4
    brightness = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.3
    return (x * contrast + brightness).clamp(-1, 1)


def fit_feature_network(
    data: EyeData, epochs: int = 8, batch_size: int = 64, lr: float = 2e-3, seed: int = 0, widths: list[int] | None = None
) -> EyeFeatureNet:
    """Train the eye-state CNN on the train split of `data` (seeded; a minute or two on CPU for a few thousand crops)."""
    train = data.subset("train")
    if len(train) < 2 or len(train.labels.unique()) < 2:
        raise ValueError("fit-features needs a train split with both open and closed eyes")
    _, channels, size, _ = train.images.shape
    with torch.random.fork_rng(devices=[]):  # seeded weight initialisation, without touching the caller's RNG
        torch.manual_seed(seed)
        net = EyeFeatureNet(FeatureConfig(image_size=size, channels=channels, widths=list(widths or FeatureConfig().widths)))
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    weight = len(train) / (2 * torch.bincount(train.labels, minlength=2).float())  # balanced classes
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for index in order.split(batch_size):
            if len(index) < 2:  # BatchNorm can't normalise a batch of one
                continue
            x = _augment(to_float(train.images[index]), generator)
            loss = F.cross_entropy(net.logits(x), train.labels[index], weight=weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(index)
        logger.info("feature CNN epoch %d/%d: loss %.4f", epoch + 1, epochs, total / len(train))
    return net.eval()


@torch.no_grad()
def predict_labels(net: EyeFeatureNet, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Open / closed predictions (N,) for float images in [-1, 1]."""
    net.eval()
    return torch.cat([net.logits(batch).argmax(1) for batch in x.split(batch_size)])


def feature_accuracy(net: EyeFeatureNet, data: EyeData) -> float:
    """Accuracy of the CNN's open / closed predictions on the real images of `data`."""
    device = next(net.parameters()).device
    predicted = torch.cat([predict_labels(net, to_float(batch.to(device))).cpu() for batch in data.images.split(512)])
    return (predicted == data.labels).float().mean().item()


def save_feature_network(net: EyeFeatureNet, path: str | os.PathLike, info: dict | None = None) -> Path:
    """Write the CNN as safetensors; its config and `info` (accuracies, data) go in the JSON header."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": FEATURE_FORMAT,
        "version": FEATURE_VERSION,
        "config": json.dumps(asdict(net.config)),
        "info": json.dumps(info or {}),
    }
    tensors = {name: value.detach().cpu().contiguous() for name, value in net.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    return path


def _checked_config(raw: str | None, path: Path) -> FeatureConfig:
    try:
        values = json.loads(raw or "")
        config = FeatureConfig(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: unreadable feature-network config in the header ({error})") from error
    ok = (
        isinstance(config.image_size, int) and 16 <= config.image_size <= 256
        and config.channels in (1, 3)
        and isinstance(config.widths, list) and 1 <= len(config.widths) <= 6
        and all(isinstance(width, int) and 1 <= width <= 1024 for width in config.widths)
    )
    if not ok:
        raise ValueError(f"{path}: feature-network config out of range: {values}")
    return config


def load_feature_network(path: str | os.PathLike = DEFAULT_FEATURES) -> EyeFeatureNet:
    """Read a feature file written by save_feature_network, refusing anything but exactly the expected tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no feature file; make one with  python -m vaegan.evaluate fit-features --data-dir DIR (or python -m vaegan.eye_features)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # noqa: BLE001 - whatever the parser says, the file is not a feature file
        raise ValueError(f"{path}: not a safetensors file ({type(error).__name__}: {error})") from error
    if metadata.get("format") != FEATURE_FORMAT or metadata.get("version") != FEATURE_VERSION:
        raise ValueError(f"{path}: not a vaegan eye-feature file (header format {metadata.get('format')!r}, version {metadata.get('version')!r})")
    net = EyeFeatureNet(_checked_config(metadata.get("config"), path))
    reference = net.state_dict()
    expected = {name: value.shape for name, value in reference.items()}
    found = {name: value.shape for name, value in tensors.items()}
    if found != expected:
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        wrong = sorted(name for name in set(expected) & set(found) if expected[name] != found[name])
        raise ValueError(f"{path}: tensors do not match the feature network (missing {missing}, unexpected {extra}, wrong shape {wrong})")
    for name, value in tensors.items():
        if value.dtype != reference[name].dtype or not torch.isfinite(value).all():
            raise ValueError(f"{path}: tensor {name} is not finite {reference[name].dtype} (found {value.dtype})")
    net.load_state_dict(tensors, strict=True)
    return net.eval().requires_grad_(False)


def feature_file_info(path: str | os.PathLike) -> dict:
    """The `info` dict stored in a feature file's header (accuracies, data, date)."""
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("info", "{}"))


def main(argv: list[str] | None = None) -> int:
    """fit-features: train the eye-state CNN on a folder of real eye crops and save it; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m vaegan.eye_features",
        description="fit-features: train the frozen eye-state CNN whose features the evaluation metrics use "
        "(also run as `python -m vaegan.evaluate fit-features` or `vaegan-evaluate fit-features`).",
    )
    parser.add_argument("--data-dir", required=True, help="folder of real eye crops")
    parser.add_argument("--out", default=str(DEFAULT_FEATURES), help="feature file to write (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        data = load_dataset(args.data_dir, image_size=args.image_size, channels=args.channels, seed=args.seed, cache_dir=args.cache_dir)
        started = time.perf_counter()
        net = fit_feature_network(data, epochs=args.epochs, seed=args.seed)
    except (ValueError, DataError) as error:
        logger.error("%s", error)
        return 1
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
    scores = ", ".join(f"{name} {value:.4f}" for name, value in {"held_out": held_out, **accuracy}.items())
    logger.info("wrote %s (accuracy: %s)", args.out, scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
