"""Shared fixtures: small synthetic eye images written in the folder layouts users have."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState
from PIL import Image, ImageDraw

from vaegan import VAEGAN, ModelConfig
from vaegan.latent_map import LatentMap


def make_eye(is_open: bool, size: int = 40, seed: int = 0) -> Image.Image:
    """A drawn grayscale 'eye': an iris in an almond when open, a lid line when closed."""
    rng = np.random.default_rng(seed)
    background = int(rng.integers(150, 220))
    image = Image.new("L", (size, size), background)
    draw = ImageDraw.Draw(image)
    cx, cy = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    width = size * rng.uniform(0.32, 0.42)
    if is_open:
        draw.ellipse([cx - width, cy - width / 2, cx + width, cy + width / 2], fill=240, outline=60)
        radius = width / 2.5
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=int(rng.integers(30, 90)))
    else:
        draw.arc([cx - width, cy - width / 2, cx + width, cy + width / 2], 10, 170, fill=40, width=2)
    noise = rng.normal(0, 6, (size, size))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8))


def write_eyes(folder: Path, is_open: bool, count: int, seed: int = 0, suffix: str = ".jpg") -> list[Path]:
    """Write `count` drawn eyes into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"eye_{seed}_{i:03d}{suffix}"
        make_eye(is_open, seed=seed * 1000 + i).save(path)
        paths.append(path)
    return paths


LAYOUTS = {
    # Kaggle open-closed-eyes-dataset style: split folders, then class folders
    "kaggle": {"train/open": 12, "train/closed": 12, "val/Open_Eyes": 4, "val/Closed_Eyes": 4, "test/open": 3, "test/closed": 3},
    # CEW style: class folders only, no splits
    "cew": {"closedLeftEyes": 10, "closedRightEyes": 10, "openLeftEyes": 10, "openRightEyes": 10},
    # drowsiness style: train / valid splits, awake / sleepy classes
    "drowsy": {"train/awake": 12, "train/sleepy": 12, "valid/awake": 4, "valid/sleepy": 4},
}


def make_layout(root: Path, layout: str) -> Path:
    """Write one of LAYOUTS under root and return root."""
    for seed, (relative, count) in enumerate(LAYOUTS[layout].items()):
        name = relative.rsplit("/", 1)[-1].lower()
        is_open = "open" in name or "awake" in name
        write_eyes(root / relative, is_open, count, seed=seed)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own decode cache and Hugging Face cache; nothing touches ~/.cache."""
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "vaegan-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def fp32_accelerator():
    """Accelerate keeps one precision per process: a test that needs fp32 resets it before and after (the others use the default)."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def eye_folder(tmp_path):
    """A small Kaggle-layout folder of drawn eyes."""
    return make_layout(tmp_path / "eyes", "kaggle")


def tiny_model(latent_dim: int = 8) -> VAEGAN:
    """A seeded, untrained 64x64 model small enough for fast tests."""
    torch.manual_seed(0)
    return VAEGAN(ModelConfig(base_channels=8, latent_dim=latent_dim)).eval()


def random_latent_map(n: int = 300, latent_dim: int = 8, seed: int = 0, open_share: float = 0.5) -> LatentMap:
    """A latent map of random points (`open_share` of them open), with a random probe and direction."""
    rng = np.random.default_rng(seed)
    return LatentMap(
        mu=rng.normal(size=(n, latent_dim)).astype(np.float32),
        xy=rng.uniform(-5, 5, size=(n, 2)).astype(np.float32),
        labels=(rng.random(n) < open_share).astype(np.int64),
        probe_weight=rng.normal(size=latent_dim).astype(np.float32),
        probe_bias=np.array([0.1], dtype=np.float32),
        open_direction=rng.normal(size=latent_dim).astype(np.float32),
    )


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
