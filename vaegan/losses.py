"""Pure loss functions of the VAE-GAN, each citing where it comes from."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims, mean over the batch.

    Kingma & Welling 2014, "Auto-Encoding Variational Bayes", Appendix B.
    """
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def pixel_reconstruction(x_rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared pixel errors per image, mean over the batch (Gaussian log-likelihood up to scale)."""
    return (x_rec - x).pow(2).flatten(1).sum(dim=1).mean()


def feature_reconstruction(features_rec: torch.Tensor, features_real: torch.Tensor) -> torch.Tensor:
    """Larsen et al. 2016, eq. 9: Gaussian log-likelihood in the discriminator's l-th layer features.

    Mean squared error per feature, mean over the batch (the trainer scales it to the pixel
    count so its weight reads like the pixel loss's). The target is detached: this loss
    never trains the discriminator.
    """
    return (features_rec - features_real.detach()).pow(2).mean()


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Goodfellow et al. 2014 discriminator objective, as BCE with logits (numerically stable)."""
    real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
    fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    return real + fake


LABEL_SCALE = 4.0  # latent unit 0 times this is the open / closed logit


def latent_state(z: torch.Tensor, scale: float = LABEL_SCALE) -> torch.Tensor:
    """P(open) that latent unit 0 encodes (the reading latent_label_loss trains)."""
    return torch.sigmoid(scale * z[:, 0].float())


def state_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Auxiliary-classifier term (Odena et al. 2017, AC-GAN): BCE of D's open / closed logit against a (soft) target."""
    return F.binary_cross_entropy_with_logits(logits, target)


def latent_label_loss(mu: torch.Tensor, labels: torch.Tensor, scale: float = LABEL_SCALE) -> torch.Tensor:
    """Open / closed read from latent unit 0 as a logit, BCE: lays the eye state along one latent axis.

    The semi-supervised VAE of Kingma et al. 2014 ("Semi-supervised learning with deep generative
    models", M2) makes the label a latent; here, as in attribute-supervised autoencoders, one unit of
    z is asked to carry it, so a slider along that unit opens and closes the eye. `scale` lets
    mu = +-1/2 (well inside the prior) already read as confident.
    """
    return F.binary_cross_entropy_with_logits(scale * mu[:, 0].float(), labels.float())


def r1_penalty(logits_real: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al. 2018, eq. 9: the squared norm of D's gradient at real images, summed per image, mean over the batch.

    `x_real` must require grad and `logits_real` be computed from it; the graph is kept so the penalty trains D.
    """
    (grad,) = torch.autograd.grad(logits_real.sum(), x_real, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss, -log D(G(z)) (Goodfellow et al. 2014, section 3)."""
    return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))
