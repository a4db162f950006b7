"""vaegan: a VAE-GAN for open / closed eye crops, with a latent-space explorer.

`from vaegan import VAEGAN` imports torch on first use, not with the package: `vaegan-app --help`
and the other commands' help stay instant.
"""

from pathlib import Path

from vaegan.config import ModelConfig, TrainConfig

__all__ = ["VAEGAN", "ModelConfig", "TrainConfig", "asset_path"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """VAEGAN, imported on first use (PEP 562)."""
    if name == "VAEGAN":
        from vaegan.networks import VAEGAN

        return VAEGAN
    raise AttributeError(f"module 'vaegan' has no attribute {name!r}")


def asset_path(name: str) -> Path:
    """A bundled file (the demo model, the eye-feature CNN): assets/NAME in a checkout, vaegan/assets/NAME when installed."""
    package = Path(__file__).resolve().parent
    installed = package / "assets" / name  # pyproject.toml installs the repository's assets/ there
    return installed if installed.exists() else package.parent / "assets" / name


def first_line(error: BaseException) -> str:
    """An error's first line (load_state_dict's and the Hub's messages run over several), else its type's name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
