"""A small U-Net denoiser and the module that puts it in front of a classifier (the
``denoiser`` defense)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional


def _block(inputs: int, outputs: int) -> nn.Sequential:
    """Two 3x3 convolutions with ReLU, size-preserving."""
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(outputs, outputs, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    """A two-level U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) that predicts a
    correction added to its input, as Liao et al.'s denoiser does::

        e1 = block(x)                       (width channels, full size)
        e2 = block(pool(e1))                (2 width, half size)
        b  = block(pool(e2))                (4 width, quarter size)
        d2 = block([up(b), e2])             skip connection: concatenated with e2
        d1 = block([up(d2), e1])            skip connection: concatenated with e1
        D(x) = x + conv1x1(d1)

    Any input size of at least 1x1 (pooling rounds up; upsampled maps are resized to their
    skip's size); ``channels`` in and out. The last convolution starts at zero, so an
    untrained denoiser is the identity and the classifier behind it keeps its accuracy.
    The output is not clamped (clamping would zero gradients at the pixel box).
    """

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        self.channels, self.width = channels, width
        self.encode1 = _block(channels, width)
        self.encode2 = _block(width, 2 * width)
        self.bottom = _block(2 * width, 4 * width)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.decode2 = _block(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.decode1 = _block(2 * width, width)
        self.correction = nn.Conv2d(width, channels, 1)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)  # type: ignore[arg-type]

    @staticmethod
    def _join(up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if up.shape[-2:] != skip.shape[-2:]:
            up = functional.interpolate(up, size=skip.shape[-2:], mode="nearest")
        return torch.cat([up, skip], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.encode1(x)
        e2 = self.encode2(functional.max_pool2d(e1, 2, ceil_mode=True))
        bottom = self.bottom(functional.max_pool2d(e2, 2, ceil_mode=True))
        d2 = self.decode2(self._join(self.up2(bottom), e2))
        d1 = self.decode1(self._join(self.up1(d2), e1))
        out: torch.Tensor = x + self.correction(d1)
        return out


class Denoised(nn.Module):
    """``classifier(denoiser(x))`` as one module, so it trains, saves and audits as a whole.

    With ``freeze_classifier`` the classifier stays in evaluation mode and, while the module
    trains, runs on detached copies of its parameters and buffers: gradients reach the
    input (and so the denoiser) but never the classifier's weights, which the optimiser
    therefore leaves unchanged.
    """

    def __init__(self, denoiser: nn.Module, classifier: nn.Module,
                 freeze_classifier: bool = True) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.classifier = classifier
        self.freeze_classifier = freeze_classifier

    def train(self, mode: bool = True) -> Denoised:
        super().train(mode)
        if self.freeze_classifier:
            self.classifier.eval()
        return self

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits of ``x`` (frozen while training, see the class doc)."""
        if self.training and self.freeze_classifier:
            frozen = {name: tensor.detach() for name, tensor in
                      [*self.classifier.named_parameters(), *self.classifier.named_buffers()]}
            out: torch.Tensor = functional_call(self.classifier, frozen, (x,))
            return out
        logits: torch.Tensor = self.classifier(x)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.denoiser(x))
