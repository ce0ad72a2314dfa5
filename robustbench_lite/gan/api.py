"""The Python API of the GAN audit, mirroring ``robust audit --task gan``.

>>> from robustbench_lite.gan.api import audit_gan
>>> result = audit_gan()                                   # the bundled digits GAN
>>> result = audit_gan(generator="G.pt", discriminator="D.pt", data="real.npz")
>>> result.gan["fd"], [(c.objective, c.eps, c.success_rate) for c in result.cells]
"""

from __future__ import annotations

from pathlib import Path

import torch

from robustbench_lite.api import usable_device
from robustbench_lite.catalogue import Catalogue, catalogue_for
from robustbench_lite.data.eval_data import EvalData
from robustbench_lite.data.resolve import load_dataset
from robustbench_lite.engine.settings import AuditSettings
from robustbench_lite.engine.store import ResultStore
from robustbench_lite.errors import GanError
from robustbench_lite.gan.audit import run_gan_audit
from robustbench_lite.gan.files import load_gan
from robustbench_lite.gan.matrices import gan_matrix
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.gan.quality import FeatureExtractor, default_features
from robustbench_lite.models.loading import load_model
from robustbench_lite.plugin_host import PluginManager, default_plugin_manager
from robustbench_lite.results import AuditResult

#: Real images of the bundled GAN.
DEFAULT_GAN_DATA = "digits"


def open_pair(combined: str | Path | None = None, *, generator: str | Path | None = None,
              discriminator: str | Path | None = None) -> GanPair:
    """The GAN in ``combined`` (one file holding both networks) and/or the ``generator`` and
    ``discriminator`` files; nothing given: the bundled digits GAN."""
    return load_gan(combined=_path(combined), generator=_path(generator),
                    discriminator=_path(discriminator))


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value).expanduser()


def real_images(spec: str | None, split: str, pair: GanPair, catalogue: Catalogue,
                n_samples: int | None = None) -> EvalData:
    """Real images to hold against the GAN (labels are ignored): the dataset ``spec``
    (default: digits) split ``split``; `GanError` when their shape is not G's."""
    data = load_dataset(spec or DEFAULT_GAN_DATA, catalogue, split).subset(n_samples)
    _, sample = pair.sample(1, 0)
    if tuple(data.input_shape) != tuple(sample.shape[1:]):
        raise GanError(f"the real images of {data.name!r} are {tuple(data.input_shape)} but "
                       f"the generator makes {tuple(sample.shape[1:])}; pass --data with "
                       "real images of the generator's shape")
    return data


def feature_extractor(spec: str | Path | None, image_shape: tuple[int, ...],
                      catalogue: Catalogue) -> FeatureExtractor | None:
    """The classifier whose penultimate layer measures image quality: ``spec`` (a model
    file, e.g. safetensors or a state_dict with ``arch`` given as ``FILE@ARCH``), else the
    bundled digits classifier for ``(1, 8, 8)`` images, else None."""
    if spec is None:
        return default_features(image_shape)
    text = str(spec)
    path_text, _, arch = text.partition("@")
    model = load_model(Path(path_text).expanduser(), catalogue=catalogue,
                       input_shape=image_shape, arch=arch or None)
    return FeatureExtractor(model.module, f"{Path(path_text).name} penultimate layer")


def audit_gan(combined: str | Path | GanPair | None = None, *,
              generator: str | Path | None = None, discriminator: str | Path | None = None,
              data: str | None = None, split: str = "test", matrix: str = "standard",
              samples: int | None = None, feature_model: str | Path | None = None,
              seed: int = 0, batch_size: int = 128, device: torch.device | str | None = None,
              store: Path | None = None, checks: bool = True, show_progress: bool = False,
              cell_time_limit: float | None = None, command: str = "",
              manager: PluginManager | None = None) -> AuditResult:
    """Audit a GAN's discriminator (see `robustbench_lite.gan.audit`): ``combined``,
    ``generator``, ``discriminator`` as `open_pair` (or a `GanPair`), real images from
    ``data``/``split``, the GAN ``matrix`` (``quick`` or ``standard``) on ``samples``
    latents and real images, quality in ``feature_model``'s feature space."""
    manager = manager or default_plugin_manager()
    catalogue = catalogue_for(manager)
    plan = gan_matrix(matrix)
    pair = combined if isinstance(combined, GanPair) else open_pair(
        combined, generator=generator, discriminator=discriminator)
    pair.to(usable_device(device))
    real = real_images(data, split, pair, catalogue)
    features = feature_extractor(feature_model, tuple(real.input_shape), catalogue)
    if features is not None:
        features.module.to(pair.device)
    settings = AuditSettings(seed=seed, batch_size=batch_size, show_progress=show_progress,
                             command=command, cell_time_limit=cell_time_limit,
                             matrix={"name": f"gan-{plan.name}", "version": plan.version})
    result_store = ResultStore(store) if store is not None else None
    try:
        return run_gan_audit(
            pair, real, plan, settings, catalogue,
            [{"name": info.name, "version": info.version} for info in manager.plugin_infos()],
            features=features, store=result_store, samples=samples,
            checks=[cls() for cls in catalogue.checks.values()] if checks else [])
    finally:
        if result_store is not None:
            result_store.close()
