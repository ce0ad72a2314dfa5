"""Content sniffing shared by the built-in adapters: what kind of container is a file?"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"
#: Protocol-2+ pickles start with 0x80 then the protocol number (legacy torch.save format).
PICKLE_MAGIC = b"\x80"


def is_zip(header: bytes) -> bool:
    return header.startswith(ZIP_MAGIC)


def zip_names(path: Path) -> list[str] | None:
    """Member names of a readable zip archive, or None if it is not one (or is truncated)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return None


def is_torchscript_zip(names: list[str]) -> bool:
    """TorchScript archives carry compiled code (``<root>/code/``) and ``constants.pkl``."""
    return any("/code/" in name for name in names) and any(
        name.endswith("constants.pkl") for name in names)


def is_torch_save_zip(names: list[str]) -> bool:
    """``torch.save`` archives hold ``<root>/data.pkl`` and no compiled code."""
    return any(name.endswith("/data.pkl") for name in names) and not is_torchscript_zip(names)


def is_safetensors(path: Path, header: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object."""
    if len(header) < 10:
        return False
    (length,) = struct.unpack("<Q", header[:8])
    if not 2 <= length <= path.stat().st_size - 8:
        return False
    with path.open("rb") as handle:
        handle.seek(8)
        raw = handle.read(length)
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict)
