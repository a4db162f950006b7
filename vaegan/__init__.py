"""vaegan: a VAE-GAN for open / closed eye crops, with a latent-space explorer."""

from pathlib import Path

from vaegan.config import ModelConfig, TrainConfig
from vaegan.networks import VAEGAN

__all__ = ["VAEGAN", "ModelConfig", "TrainConfig", "asset_path"]
__version__ = "0.1.0"


def asset_path(name: str) -> Path:
    """A bundled file (the demo model, the eye-feature CNN): assets/NAME in a checkout, vaegan/assets/NAME when installed."""
    package = Path(__file__).resolve().parent
    installed = package / "assets" / name  # pyproject.toml installs the repository's assets/ there
    return installed if installed.exists() else package.parent / "assets" / name
