"""The ``input-transform`` defense: a preprocessing module in front of the classifier."""

from __future__ import annotations

from torch import nn

from robustbench_lite.defenses.base import Defense
from robustbench_lite.defenses.checking import check_number, check_steps
from robustbench_lite.defenses.preprocessing import (
    BitDepth,
    GaussianNoise,
    JpegLike,
    Preprocessed,
    ResizePad,
)
from robustbench_lite.errors import DefenseError

#: Separates several transformations in ``kind=`` (a comma would end the parameter).
KIND_SEPARATOR = "+"

#: Each kind and the parameter that sets it.
KIND_PARAMETER = {"bit-depth": "bits", "jpeg": "quality", "resize-pad": "max_scale",
                  "noise": "sigma"}

DEFAULTS: dict[str, int | float] = {"bits": 3, "quality": 75, "max_scale": 1.25,
                                    "sigma": 0.1}


class InputTransform(Defense):
    """Input transformations (``input-transform``): the classifier behind one or more
    preprocessing steps, fine-tuned on the transformed inputs.

    The kinds, applied in the order given (``kind=jpeg+noise``):

    * ``bit-depth``: each value rounded to ``2 ** bits`` levels (Xu, Evans & Qi, "Feature
      Squeezing: Detecting Adversarial Examples in Deep Neural Networks", NDSS 2018).
    * ``jpeg``: JPEG-like coding of 8x8 blocks per channel (DCT, coefficients rounded to a
      ``quality``-scaled quantisation table, inverse DCT): Dziugaite, Ghahramani & Roy
      2016; Das et al., "Keeping the Bad Guys Out", 2017; Guo, Rana, Cisse & van der
      Maaten, "Countering Adversarial Images using Input Transformations", ICLR 2018.
    * ``resize-pad``: random resizing to between 1 and ``max_scale`` times the height, random
      zero padding to ``max_scale`` times, resized back to the input size (Xie, Wang, Zhang,
      Ren & Yuille, "Mitigating Adversarial Effects Through Randomization", ICLR 2018).
    * ``noise``: fresh Gaussian noise of standard deviation ``sigma`` on every call.

    ``bit-depth`` and ``jpeg`` round (``torch.round``): their input gradient is zero almost
    everywhere, so naive gradient attacks fail while the model is no more robust (Athalye,
    Carlini & Wagner, ICML 2018 break them with BPDA). ``resize-pad`` and ``noise`` are
    random: a single gradient sample misleads, Expectation over Transformation does not. The
    audit's checks flag both (see docs/harden.md). The transformation stays in front of the
    classifier during training, as deployed, so the classifier is fine-tuned on transformed
    inputs (``--epochs`` sets how long). The saved model is the wrapper: harden writes
    ``model.pt`` only, no bare-architecture ``model.safetensors``.

    Args:
        kind: one or more of ``bit-depth``, ``jpeg``, ``resize-pad``, ``noise``, joined by
            ``+`` (required).
        bits: for ``bit-depth``, bits per value, 1 to 8 (default 3: 8 levels).
        quality: for ``jpeg``, the quality 1 to 100 (default 75, as in Guo et al.); 100 is
            nearly the identity.
        max_scale: for ``resize-pad``, the canvas side as a multiple of the input's, > 1
            and <= 2 (default 1.25; Xie et al. use 331 / 299, about 1.1, on ImageNet).
        sigma: for ``noise``, the standard deviation, > 0 and <= 1 (default 0.1).

    A parameter of a kind not in ``kind`` is refused. Cost per step: the transformation's
    (a few tensor operations) on top of plain training.
    """

    name = "input-transform"

    def __init__(self, *, kind: str = "", bits: int | None = None,
                 quality: int | None = None, max_scale: float | None = None,
                 sigma: float | None = None) -> None:
        choices = ", ".join(KIND_PARAMETER)
        if not isinstance(kind, str) or not kind.strip():
            raise DefenseError(f"`defense` {self.name} needs kind: one or more of {choices} "
                               f"joined by '{KIND_SEPARATOR}', e.g. `defense` "
                               f"{self.name}:kind=bit-depth,bits=3")
        self.kinds = tuple(part.strip() for part in kind.split(KIND_SEPARATOR))
        for part in self.kinds:
            if part not in KIND_PARAMETER:
                raise DefenseError(f"`defense` {self.name}: unknown kind {part!r}; choose "
                                   f"from {choices}, joined by '{KIND_SEPARATOR}'")
        if len(set(self.kinds)) != len(self.kinds):
            raise DefenseError(f"`defense` {self.name}: kind {kind!r} names a transformation "
                               "twice; give each once")
        given = {"bits": bits, "quality": quality, "max_scale": max_scale, "sigma": sigma}
        for parameter, value in given.items():
            owner = next(k for k, p in KIND_PARAMETER.items() if p == parameter)
            if value is not None and owner not in self.kinds:
                raise DefenseError(f"`defense` {self.name}: {parameter} sets kind {owner}, "
                                   f"which kind {kind!r} does not include; add {owner} to "
                                   f"kind or drop {parameter}")
        values: dict[str, int | float] = {}
        for part in self.kinds:
            parameter = KIND_PARAMETER[part]
            chosen = given[parameter]
            values[parameter] = DEFAULTS[parameter] if chosen is None else chosen
        if "bits" in values:
            values["bits"] = check_steps(self.name, values["bits"], "bits", high=8)
        if "quality" in values:
            values["quality"] = check_steps(self.name, values["quality"], "quality", high=100)
        if "max_scale" in values:
            values["max_scale"] = check_number(self.name, "max_scale", values["max_scale"],
                                               lambda v: 1 < v <= 2,
                                               "a number with 1 < max_scale <= 2")
        if "sigma" in values:
            values["sigma"] = check_number(self.name, "sigma", values["sigma"],
                                           lambda v: 0 < v <= 1, "a number with 0 < sigma <= 1")
        self.values = values
        self._set_params(kind=KIND_SEPARATOR.join(self.kinds), **values)

    def steps(self) -> list[nn.Module]:
        """The transformation modules, in order."""
        built: list[nn.Module] = []
        for kind in self.kinds:
            value = self.values[KIND_PARAMETER[kind]]
            if kind == "bit-depth":
                built.append(BitDepth(int(value)))
            elif kind == "jpeg":
                built.append(JpegLike(int(value)))
            elif kind == "resize-pad":
                built.append(ResizePad(float(value)))
            else:
                built.append(GaussianNoise(float(value)))
        return built

    def transform_model(self, module: nn.Module) -> nn.Module:
        """``module`` behind the transformation steps (a new `Preprocessed` module on the
        same device; ``module`` itself is not changed)."""
        wrapped = Preprocessed(self.steps(), module)
        parameter = next(module.parameters(), None)
        return wrapped if parameter is None else wrapped.to(parameter.device)
