"""Measuring a colour-digits generator: does the coarse/fine split hold?

Images of colour-digits are a grey digit times a foreground colour, so two image statistics
separate the factors without any model:

- `shape_image`: per pixel the largest channel, divided by the image's peak, ``(N, 1, H, W)``
  in [0, 1]; for ``x = g * c`` it is ``g / max(g)``, the grey digit whatever its colour;
- `colour_of`: the foreground colour ``(N, C)``, the least-squares fit of ``x`` by
  ``shape_image(x) * c``; for ``x = g * c`` with a peak of ``g`` at 1 it is exactly ``c``.

The shape classifier is the bundled ``digits-cnn`` (trained by this project on grey digits)
applied to `shape_image`: it reads the digit, never the colour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.semantic.generator import StyleGenerator

PAIRING_SEED = 0
"""Seed of the permutation pairing each image (coarse source) with a fine-style source."""


def shape_image(x: Tensor) -> Tensor:
    """``(N, C, H, W)`` to the colour-free digit ``(N, 1, H, W)`` in [0, 1]."""
    intensity = x.amax(dim=1, keepdim=True)
    peak = intensity.flatten(1).amax(dim=1).clamp_min(1e-6)
    return intensity / peak[:, None, None, None]


def colour_of(x: Tensor) -> Tensor:
    """``(N, C, H, W)`` to the foreground colour ``(N, C)``: the least-squares ``c`` of
    ``x ~ shape_image(x) * c`` (faint background pixels barely count)."""
    shape = shape_image(x).flatten(1)
    weighted = (x.flatten(2) * shape[:, None, :]).sum(dim=2)
    return weighted / shape.square().sum(dim=1, keepdim=True).clamp_min(1e-6)


def colour_transfer(shape_from: Tensor, colour_from: Tensor) -> Tensor:
    """The digit of ``shape_from`` in the colour of ``colour_from``: what mixing their coarse
    and fine styles should synthesise."""
    return (shape_image(shape_from) * colour_of(colour_from)[:, :, None, None]).clamp(0.0, 1.0)


def load_shape_classifier() -> nn.Module:
    """The bundled ``digits-cnn`` (grey 8x8 digits to 10 logits), frozen, in evaluation mode."""
    from robustbench_lite.builtin.architectures import DIGITS_CNN

    if DIGITS_CNN.weights is None:  # pragma: no cover - the wheel always ships them
        raise FileNotFoundError("the bundled digits-cnn weights are missing")
    module = DIGITS_CNN.create()
    module.load_state_dict(load_file(str(DIGITS_CNN.weights)))
    return module.eval().requires_grad_(False)


@dataclass(frozen=True)
class GeneratorQuality:
    """What `measure_generator` found on ``samples`` images.

    ``reconstruction_mse``: mean squared pixel error of ``synthesise(encode(x))``.
    ``shape_accuracy``: the shape classifier's accuracy on the data itself (the ceiling).
    ``label_preservation``: fraction of fine mixes (coarse styles of image ``i``, fine styles
    of a partner) that the shape classifier gives image ``i``'s label.
    ``colour_change``: mean RGB distance between the colour of the mix and of image ``i``.
    ``colour_error``: mean RGB distance between the colour of the mix and of the partner.
    """

    samples: int
    reconstruction_mse: float
    shape_accuracy: float
    label_preservation: float
    colour_change: float
    colour_error: float

    def as_metadata(self) -> dict[str, str]:
        return {key: (f"{value:.6f}" if isinstance(value, float) else str(value))
                for key, value in asdict(self).items()}


@torch.no_grad()
def measure_generator(generator: StyleGenerator, data: EvalData,
                      classifier: nn.Module | None = None, batch_size: int = 256
                      ) -> GeneratorQuality:
    """Reconstruction error and how fine-style mixing keeps the digit and moves the colour,
    on ``data`` (each image paired with another by a permutation seeded `PAIRING_SEED`)."""
    classifier = classifier or load_shape_classifier()
    device = generator.device
    classifier.to(device)
    partner = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(PAIRING_SEED))
    totals = {"mse": 0.0, "data_hits": 0.0, "mix_hits": 0.0, "change": 0.0, "error": 0.0}
    for start in range(0, len(data.x), batch_size):
        x = data.x[start:start + batch_size].to(device)
        y = data.y[start:start + batch_size].to(device)
        other = data.x[partner[start:start + batch_size]].to(device)
        styles = generator.encode(x)
        reconstruction = generator.synthesise(styles)
        mixed = generator.synthesise(generator.mix(styles, generator.encode(other)))
        totals["mse"] += float((reconstruction - x).square().mean(dim=(1, 2, 3)).sum())
        totals["data_hits"] += float((classifier(shape_image(x)).argmax(1) == y).sum())
        totals["mix_hits"] += float((classifier(shape_image(mixed)).argmax(1) == y).sum())
        totals["change"] += float((colour_of(mixed) - colour_of(x)).norm(dim=1).sum())
        totals["error"] += float((colour_of(mixed) - colour_of(other)).norm(dim=1).sum())
    n = len(data.x)
    return GeneratorQuality(samples=n, reconstruction_mse=totals["mse"] / n,
                            shape_accuracy=totals["data_hits"] / n,
                            label_preservation=totals["mix_hits"] / n,
                            colour_change=totals["change"] / n,
                            colour_error=totals["error"] / n)
