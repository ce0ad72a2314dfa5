"""GAN losses: the non-saturating logistic loss (Goodfellow et al. 2014, as in StyleGAN2)
and the R1 gradient penalty on real images (Mescheder et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional


def _flat(logits: Tensor) -> Tensor:
    return logits.reshape(len(logits))


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *,
                       real_target: float = 1.0) -> Tensor:
    """Binary cross-entropy of D with targets ``real_target`` for reals and 0 for fakes:
    ``softplus(-real)`` when ``real_target`` is 1; below 1 it is one-sided label smoothing
    (Salimans et al. 2016). Mean over each set, summed over the two."""
    real, fake = _flat(real_logits), _flat(fake_logits)
    on_real = real_target * functional.softplus(-real) + (1.0 - real_target) * \
        functional.softplus(real)
    loss: Tensor = on_real.mean() + functional.softplus(fake).mean()
    return loss


def generator_loss(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss ``softplus(-D(G(z))).mean()``."""
    loss: Tensor = functional.softplus(-_flat(fake_logits)).mean()
    return loss


def r1_penalty(discriminator: nn.Module, real: Tensor, gamma: float) -> Tensor:
    """``gamma / 2 * mean_i ||grad_x D(x_i)||^2`` over the real batch; differentiable in D's
    parameters (``create_graph=True``). Zero (no graph work) when ``gamma`` is 0."""
    if gamma == 0:
        return real.new_zeros(())
    x = real.detach().requires_grad_(True)
    logits: Tensor = discriminator(x)
    (gradient,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    penalty: Tensor = 0.5 * gamma * gradient.square().flatten(1).sum(dim=1).mean()
    return penalty
