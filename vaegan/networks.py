"""Encoder, Decoder, Discriminator, and VAEGAN (encoder + decoder, the part that goes to the Hub).

Layout after Larsen et al. 2016 ("Autoencoding beyond pixels using a learned similarity
metric") at 64x64: stride-2 conv encoder to (mu, logvar), a mirrored decoder, and a
discriminator whose mid-depth features give the learned reconstruction similarity.
Two deliberate departures, both for stability: the decoder upsamples with sub-pixel convs
(ICNR-initialised PixelShuffle) instead of transposed convs (no checkerboard, cheap on CPU), and GroupNorm replaces BatchNorm so
eval-mode outputs never depend on batch statistics.
"""


import math

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from vaegan.config import ModelConfig


def validate_config(config: ModelConfig) -> None:
    """Raise ValueError for a config this code can't build, before any allocation."""
    size = config.image_size
    if not isinstance(size, int) or size < 16 or size > 256 or size & (size - 1):
        raise ValueError(f"image_size must be a power of two from 16 to 256, got {size!r}")
    if config.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {config.channels!r}")
    if not isinstance(config.latent_dim, int) or not 1 <= config.latent_dim <= 4096:
        raise ValueError(f"latent_dim must be an integer from 1 to 4096, got {config.latent_dim!r}")
    for name in ("base_channels", "max_channels"):
        value = getattr(config, name)
        if not isinstance(value, int) or not 4 <= value <= 1024:
            raise ValueError(f"{name} must be an integer from 4 to 1024, got {value!r}")
    if config.model_type not in ("vaegan", "vae"):
        raise ValueError(f"model_type must be 'vaegan' or 'vae', got {config.model_type!r}")
    if config.final_upsample not in ("nearest", "subpixel"):
        raise ValueError(f"final_upsample must be 'nearest' or 'subpixel', got {config.final_upsample!r}")


def _widths(config: ModelConfig) -> list[int]:
    """Channel widths at each resolution, from image_size / 2 down to 4x4."""
    steps = int(math.log2(config.image_size // 4))
    return [min(config.base_channels * 2**i, config.max_channels) for i in range(steps)]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class Encoder(nn.Module):
    """x (B, C, S, S) in [-1, 1] -> mu, logvar (B, Z)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = _widths(config)
        layers: list[nn.Module] = []
        in_channels = config.channels
        for width in widths:
            layers += [nn.Conv2d(in_channels, width, 4, 2, 1), _norm(width), nn.SiLU()]
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1] * 4 * 4, 2 * config.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x).flatten(1)  # (B, W * 4 * 4)
        mu, logvar = self.head(h).chunk(2, dim=1)  # (B, Z) each
        return mu, logvar.clamp(-30.0, 20.0)


def _subpixel_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv to 4x the channels, then PixelShuffle(2): a 2x upsampling computed at the low resolution.

    ICNR initialisation (Aitken et al. 2017): the four sub-pixels start identical, so the
    output starts free of checkerboard artefacts.
    """
    conv = nn.Conv2d(in_channels, out_channels * 4, 3, 1, 1)
    with torch.no_grad():
        weight = torch.empty(out_channels, in_channels, 3, 3)
        nn.init.kaiming_uniform_(weight, a=5**0.5)
        conv.weight.copy_(weight.repeat_interleave(4, dim=0))
        conv.bias.copy_(conv.bias[::4].repeat_interleave(4))
    return nn.Sequential(conv, nn.PixelShuffle(2))


class Decoder(nn.Module):
    """z (B, Z) -> x (B, C, S, S) in [-1, 1]."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths = _widths(config)[::-1]
        self.start_channels = widths[0]
        self.project = nn.Linear(config.latent_dim, widths[0] * 4 * 4)
        layers: list[nn.Module] = [_norm(widths[0]), nn.SiLU()]
        for width_in, width_out in zip(widths, widths[1:]):
            layers += [_subpixel_conv(width_in, width_out), _norm(width_out), nn.SiLU()]
        last = widths[-1]
        layers += [nn.Conv2d(last, last, 3, 1, 1), _norm(last), nn.SiLU()]  # refine before the last upsampling
        if config.final_upsample == "subpixel":
            layers += [_subpixel_conv(last, config.channels)]
        else:  # each output pixel from one shared 3x3 filter: no 2x2 sub-pixel pattern in what the eye sees
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(last, config.channels, 3, 1, 1)]
        layers += [nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, self.start_channels, 4, 4)  # (B, W, 4, 4)
        return self.body(h)


DISCRIMINATOR_NORMS = ("spectral", "group")


class Discriminator(nn.Module):
    """x -> (logit (B,), state logit (B,), features (B, F)).

    The first logit is real vs generated; the second reads open (1) vs closed (0) from the same
    trunk, as in Odena et al.'s AC-GAN. The features after block `feature_depth` (Larsen et al.:
    the third) are the learned similarity.

    `norm`: "spectral" (Miyato et al. 2018) normalises every weight, which bounds how fast D can tell
    samples apart; "group" puts a GroupNorm after the second block on (the first sees the image as it
    is) and leaves the weights free, for training with an R1 penalty (see losses.r1_penalty).
    """

    def __init__(self, config: ModelConfig, feature_depth: int = 3, norm: str = "spectral"):
        super().__init__()
        if norm not in DISCRIMINATOR_NORMS:
            raise ValueError(f"discriminator norm must be one of {', '.join(DISCRIMINATOR_NORMS)}, got {norm!r}")
        weights = spectral_norm if norm == "spectral" else (lambda layer: layer)
        widths = _widths(config)
        blocks = []
        in_channels = config.channels
        for i, width in enumerate(widths):
            layers = [weights(nn.Conv2d(in_channels, width, 4, 2, 1))]
            layers += [_norm(width)] if norm == "group" and i > 0 else []
            blocks.append(nn.Sequential(*layers, nn.LeakyReLU(0.2)))
            in_channels = width
        self.feature_depth = min(feature_depth, len(blocks))
        self.blocks = nn.ModuleList(blocks)
        self.head = weights(nn.Linear(widths[-1] * 4 * 4, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = x
        h = x
        for depth, block in enumerate(self.blocks, start=1):
            h = block(h)
            if depth == self.feature_depth:
                features = h
        logit, state = self.head(h.flatten(1)).unbind(1)
        return logit, state, features.flatten(1)


# A model dir's discriminator (fine-tuning starts from it, see Trainer): safetensors, so loading it runs no code.
DISCRIMINATOR_FILE = "discriminator.safetensors"

# The Hub tags of a vaegan model: the mixin writes them on save_pretrained / push_to_hub, vaegan.card into its card.
HUB_TAGS = ["vae-gan", "vae", "gan", "image-generation", "eyes", "latent-space", "pytorch"]


def toward_other_state(z: torch.Tensor, labels: torch.Tensor, open_direction: torch.Tensor) -> torch.Tensor:
    """The page's slider edit: open eyes (label 1) moved one closed -> open step back, closed eyes one step on."""
    sign = torch.where(labels.to(z.device) == 1, -1.0, 1.0).to(z.dtype)
    return z + sign[:, None] * open_direction.to(z)


class VAEGAN(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="vaegan",
    tags=HUB_TAGS,
    license="mit",
):
    """The VAE part of the VAE-GAN (encoder + decoder); the discriminator stays in training checkpoints."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        validate_config(config)
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [-1, 1] -> mu, logvar (B, Z)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Z) -> x (B, C, H, W) in [-1, 1]."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: x_rec, mu, logvar, and the reparameterised z that x_rec was decoded from."""
        mu, logvar = self.encode(x)
        # reparameterisation trick, in fp32 under autocast too: then the z returned is the z decoded (Accelerate
        # copies bf16 outputs to fp32), and the trainer can take gradients with respect to it
        z = mu.float() + torch.randn_like(mu, dtype=torch.float32) * (0.5 * logvar.float()).exp()
        return self.decode(z), mu, logvar, z

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n draws from the prior N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        return self.decode(z)
