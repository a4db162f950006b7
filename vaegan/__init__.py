"""vaegan: a VAE-GAN for open / closed eye crops, with a latent-space explorer."""

from vaegan.config import ModelConfig, TrainConfig
from vaegan.networks import VAEGAN

__all__ = ["VAEGAN", "ModelConfig", "TrainConfig"]
__version__ = "0.1.0"
