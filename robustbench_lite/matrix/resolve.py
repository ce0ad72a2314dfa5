"""`resolve_matrix`: turn what a user passed to ``--matrix`` into a `ThreatMatrix`.

Contract: a registered preset's name builds that preset for the data family; otherwise a
path ending in ``.toml``, or naming an existing file, is read with `load_matrix_file`
(`MatrixError` when it is missing or malformed); anything else raises `UnknownMatrixError`
listing the presets and "a .toml file". Preset names win over same-named files: write
``./standard`` to read a file called ``standard``.
"""

from __future__ import annotations

from pathlib import Path

from robustbench_lite.catalogue import Catalogue
from robustbench_lite.errors import UnknownMatrixError
from robustbench_lite.matrix.core import ThreatMatrix
from robustbench_lite.matrix.files import load_matrix_file


def resolve_matrix(spec: str, catalogue: Catalogue, family: str) -> ThreatMatrix:
    """The preset named ``spec`` built for ``family``, or the matrix in the file ``spec``."""
    if spec in catalogue.matrices.names():
        return catalogue.matrices.get(spec).build(family)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".toml" or path.is_file():
        return load_matrix_file(path)
    error = UnknownMatrixError(spec, catalogue.matrices.names())
    error.args = (f"{error.args[0]}, or a .toml file (see docs/matrices.md)",)
    raise error
