import math

import torch

from vaegan import losses


def test_kl_is_zero_for_the_prior_and_matches_the_closed_form():
    assert losses.kl_divergence(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # KL(N(1,1)||N(0,1)) = 0.5 ; KL(N(0,4)||N(0,1)) = 0.5 * (4 - 1 - ln 4)
    expected = 0.5 + 0.5 * (4 - 1 - math.log(4.0))
    assert math.isclose(losses.kl_divergence(mu, logvar).item(), expected, rel_tol=1e-6)
    per_dim = [losses.kl_divergence(mu[:, [d]], logvar[:, [d]]).item() for d in range(2)]  # the sum is over dims: each alone
    assert torch.allclose(torch.tensor(per_dim), torch.tensor([0.5, 0.5 * (3 - math.log(4.0))]))


def test_reconstruction_losses():
    x = torch.zeros(2, 1, 4, 4)
    assert losses.pixel_reconstruction(x, x).item() == 0.0
    assert losses.pixel_reconstruction(x + 0.5, x).item() == 16 * 0.25  # per-image sum
    features = torch.randn(2, 10, requires_grad=True)
    target = torch.randn(2, 10, requires_grad=True)
    loss = losses.feature_reconstruction(features, target)
    loss.backward()
    assert target.grad is None  # the target is detached: never trains the discriminator
    assert features.grad is not None


def test_gan_losses_prefer_the_right_answer():
    sure_real, sure_fake = torch.full((8,), 10.0), torch.full((8,), -10.0)
    assert losses.discriminator_loss(sure_real, sure_fake) < 1e-3
    assert losses.discriminator_loss(sure_fake, sure_real) > 10
    assert losses.generator_loss(sure_real) < 1e-3 < losses.generator_loss(sure_fake)


def test_latent_label_loss_reads_unit_zero_only():
    labels = torch.tensor([1, 0, 1, 0])
    right = torch.zeros(4, 3)
    right[:, 0] = torch.tensor([2.0, -2.0, 2.0, -2.0])  # unit 0 says open for the open eyes
    wrong = -right
    assert losses.latent_label_loss(right, labels) < 0.01 < 5 < losses.latent_label_loss(wrong, labels)
    noise = torch.zeros(4, 3)
    noise[:, 1:] = 100.0  # the other units carry no label
    assert math.isclose(losses.latent_label_loss(noise, labels).item(), math.log(2), rel_tol=1e-6)


def test_r1_penalty_is_the_squared_gradient_norm_at_real_images_and_trains_d():
    weight = torch.tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True)  # D(x) = <weight, x> (+ x.x / 2 for the second case)
    x = torch.randn(5, 1, 2, 2, requires_grad=True)
    linear = (x[:, 0] * weight).sum(dim=(1, 2))
    assert math.isclose(losses.r1_penalty(linear, x).item(), weight.pow(2).sum().item(), rel_tol=1e-6)  # the same for every image
    quadratic = linear + 0.5 * x.pow(2).sum(dim=(1, 2, 3))  # gradient weight + x, so the penalty differs per image
    expected = (weight + x[:, 0]).pow(2).sum(dim=(1, 2)).mean()
    penalty = losses.r1_penalty(quadratic, x)
    assert torch.allclose(penalty, expected)
    (grad,) = torch.autograd.grad(penalty, weight)  # the graph is kept: the penalty trains D's weights
    assert torch.allclose(grad, 2 * (weight + x[:, 0]).mean(0))
