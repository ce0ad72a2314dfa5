"""`load_generator`: a generator spec or file to a `StyleGenerator`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from robustbench_lite.errors import GeneratorError
from robustbench_lite.semantic.generator import StyleGenerator
from robustbench_lite.semantic.stylegan import read_generator_metadata

if TYPE_CHECKING:
    from robustbench_lite.catalogue import Catalogue

logger = logging.getLogger(__name__)

DEFAULT_GENERATOR = "colour-digits"


def resolve_generator(spec_or_path: str | Path | None, catalogue: Catalogue
                      ) -> tuple[type[StyleGenerator], Path | None]:
    """The registered generator class a spec names and the file it opens (None: the class's
    bundled default).

    - ``None`` or a registered name (``colour-digits``): that generator's bundled default;
    - ``NAME:PATH``: ``PATH`` opened by the generator registered as ``NAME``;
    - a path: a generator file; its ``generator`` metadata names the registered class that
      opens it (files written by ``robust train-generator`` carry it).

    Raises `GeneratorError` (or `UnknownGeneratorError`) with one line naming the fix.
    """
    registry = catalogue.generators
    if spec_or_path is None:
        spec_or_path = DEFAULT_GENERATOR
    if isinstance(spec_or_path, str):
        if spec_or_path in registry.names():
            return registry.get(spec_or_path), None
        name, sep, rest = spec_or_path.partition(":")
        if sep and name in registry.names():
            return registry.get(name), Path(rest).expanduser()
    path = Path(spec_or_path).expanduser()
    if not path.exists():
        raise GeneratorError(f"no generator named {str(spec_or_path)!r} and no such file; "
                             f"choose one of: {', '.join(registry.names()) or '(none)'}, a "
                             "file written by robust train-generator, or NAME:PATH")
    return registry.get(read_generator_metadata(path)["generator"]), path


def load_generator(spec_or_path: str | Path | None, catalogue: Catalogue) -> StyleGenerator:
    """Open the generator ``spec_or_path`` names (see `resolve_generator`)."""
    cls, path = resolve_generator(spec_or_path, catalogue)
    generator = cls.load(path)
    logger.debug("opened generator %s from %s", generator.name, path or "its bundled file")
    return generator
