"""GAN files: reading and writing a generator and a discriminator.

Two formats, told apart by content:

- safetensors, written by `save_gan` (``robust train-gan``): tensors named
  ``generator.<key>`` and ``discriminator.<key>``; metadata ``format`` =
  ``robustbench-lite-gan``, ``version`` = ``1``, the architecture of each role present
  (``generator`` = ``digits-gan-generator``, ``discriminator`` = ``digits-gan-discriminator``),
  ``config`` (`DigitsGanConfig` as JSON) and the writer's own string metadata;
- TorchScript (``torch.jit.save``), one module per file: any generator with an int
  attribute ``z_dim`` (``mapping``/``synthesis`` as ``@torch.jit.export`` methods enable
  w-space attacks) or any discriminator. Metadata, when present, is the JSON object in the
  archive's extra file ``robustbench_lite_gan.json``.

A file is data, never trusted: unknown architectures, missing metadata, wrong tensor names
or shapes, non-finite weights and out-of-range configs are refused with one `GanError` line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from robustbench_lite.atomic import atomic_path
from robustbench_lite.errors import GanError
from robustbench_lite.gan.networks import (
    DISCRIMINATOR_ARCHITECTURE,
    GENERATOR_ARCHITECTURE,
    DigitsDiscriminator,
    DigitsGanConfig,
    DigitsGenerator,
)
from robustbench_lite.gan.pair import GanPair
from robustbench_lite.models.robust_model import file_sha256

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_GAN = WEIGHTS_DIR / "digits_gan.safetensors"
"""The bundled digits GAN, made by ``robust train-gan`` with its defaults."""

FORMAT = "robustbench-lite-gan"
VERSION = "1"
ROLES = ("generator", "discriminator")
ARCHITECTURES: dict[str, tuple[str, type[nn.Module]]] = {
    "generator": (GENERATOR_ARCHITECTURE, DigitsGenerator),
    "discriminator": (DISCRIMINATOR_ARCHITECTURE, DigitsDiscriminator),
}
#: The extra file of a TorchScript archive holding its metadata (a JSON object).
TORCHSCRIPT_METADATA = "robustbench_lite_gan.json"
RESERVED = ("format", "version", "config", *ROLES)


# ---------------------------------------------------------------- writing

def save_gan(path: Path, generator: nn.Module | None = None,
             discriminator: nn.Module | None = None,
             metadata: Mapping[str, str] | None = None) -> None:
    """Write the digits generator and/or discriminator to one safetensors file, atomically.
    ``metadata`` (text to text) is stored beside the format's own keys, which win."""
    modules = {role: module for role, module in zip(ROLES, (generator, discriminator),
                                                   strict=True) if module is not None}
    if not modules:
        raise GanError("save_gan got neither a generator nor a discriminator; pass one or both")
    configs: set[DigitsGanConfig] = set()
    for role, module in modules.items():
        name, kind = ARCHITECTURES[role]
        if not isinstance(module, kind) or \
                not isinstance(module, DigitsGenerator | DigitsDiscriminator):
            raise GanError(f"save_gan writes {name} modules only, got "
                           f"{type(module).__name__} as the {role}; use save_pair, which "
                           "writes TorchScript")
        configs.add(module.config)
    if len(configs) != 1:
        raise GanError("the generator and discriminator have different configs; save them "
                       "to two files")
    extra = dict(metadata or {})
    bad = [key for key, value in extra.items()
           if not isinstance(key, str) or not isinstance(value, str)]
    if bad:
        raise GanError(f"metadata must map text to text; fix the entries {bad[:3]}")
    header = {**extra, "format": FORMAT, "version": VERSION,
              "config": configs.pop().to_json(),
              **{role: ARCHITECTURES[role][0] for role in modules}}
    tensors = {f"{role}.{key}": value.detach().cpu().contiguous()
               for role, module in modules.items()
               for key, value in module.state_dict().items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=header)


def _script(module: nn.Module, role: str) -> torch.jit.ScriptModule:
    if isinstance(module, torch.jit.ScriptModule):
        return module
    try:
        scripted = torch.jit.script(module)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GanError(f"cannot write the {role} as TorchScript: torch.jit.script failed "
                       f"({first}); make the module scriptable or export it yourself") from None
    return scripted


def save_pair(pair: GanPair, directory: Path,
              metadata: Mapping[str, str] | None = None) -> list[Path]:
    """Write ``pair`` into ``directory``: ``gan.safetensors`` when both modules are the digits
    architectures, else ``generator.pt`` and ``discriminator.pt`` (TorchScript, non-script
    modules scripted). Each file is replaced atomically; returns the paths written."""
    extra = {**(metadata or {})}
    if isinstance(pair.generator, DigitsGenerator) and \
            isinstance(pair.discriminator, DigitsDiscriminator) and \
            pair.generator.config == pair.discriminator.config:
        path = directory / "gan.safetensors"
        save_gan(path, pair.generator, pair.discriminator, extra)
        return [path]
    written = []
    for role, module in (("generator", pair.generator), ("discriminator", pair.discriminator)):
        scripted = _script(module, role)
        path = directory / f"{role}.pt"
        header = {**extra, "format": FORMAT, "version": VERSION, role: "torchscript"}
        with atomic_path(path) as temporary:
            torch.jit.save(scripted, str(temporary),
                           _extra_files={TORCHSCRIPT_METADATA: json.dumps(header)})
        written.append(path)
    return written


# ---------------------------------------------------------------- reading

@dataclass
class _File:
    """What one file gave: a module per role it was asked for, its metadata, its format."""

    path: Path
    modules: dict[str, nn.Module]
    metadata: dict[str, str]
    format: str


def _safetensors_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise GanError(f"{path} is neither TorchScript nor a readable safetensors file ({exc}); "
                       "pass a file written by robust train-gan or torch.jit.save") from None
    if metadata.get("format") != FORMAT:
        raise GanError(f"{path} has no format={FORMAT!r} metadata, so it is not a GAN file; "
                       "write one with robust train-gan")
    if metadata.get("version") != VERSION:
        raise GanError(f"{path} is GAN format version {metadata.get('version')!r}; this "
                       f"version reads {VERSION!r} only, so retrain it with robust train-gan")
    return metadata


def _file_roles(path: Path) -> tuple[str, ...]:
    """The roles a safetensors GAN file holds (after checking its format)."""
    metadata = _safetensors_metadata(path)
    return tuple(role for role in ROLES if role in metadata)


def _read_safetensors(path: Path, roles: tuple[str, ...]) -> _File:
    metadata = _safetensors_metadata(path)
    try:
        config = DigitsGanConfig.from_json(metadata.get("config", ""))
    except (ValueError, TypeError) as exc:
        raise GanError(f"{path}: missing or malformed 'config' metadata ({exc}); retrain it "
                       "with robust train-gan") from None
    present = [role for role in ROLES if role in metadata]
    for role in present:
        known = ARCHITECTURES[role][0]
        if metadata[role] != known:
            raise GanError(f"{path} holds an unknown {role} architecture "
                           f"{metadata[role][:60]!r}; this version knows {known!r}")
    for role in roles:
        if role not in present:
            raise GanError(f"{path} holds no {role} (it has: {', '.join(present) or 'none'}); "
                           f"pass a {role} file too")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GanError(f"{path} is not a readable safetensors file ({exc}); pass a file "
                       "written by robust train-gan") from None
    stray = [key for key in tensors if key.split(".", 1)[0] not in present]
    if stray:
        raise GanError(f"{path} has tensors of no declared role ({stray[0]!r}); keys must "
                       "start with generator. or discriminator.")
    modules: dict[str, nn.Module] = {}
    for role in roles:
        module = ARCHITECTURES[role][1](config)
        prefix = f"{role}."
        state = {key[len(prefix):]: value for key, value in tensors.items()
                 if key.startswith(prefix)}
        if not all(bool(torch.isfinite(value).all()) for value in state.values()
                   if value.is_floating_point()):
            raise GanError(f"{path}: the {role} has NaN or infinite weights; retrain it")
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            first = " ".join(str(exc).split())[:200]
            raise GanError(f"{path} does not match the {ARCHITECTURES[role][0]} architecture "
                           f"of its config ({first}); retrain it with robust train-gan") from None
        modules[role] = module.eval()
    return _File(path, modules, metadata, "safetensors")


def _read_torchscript(path: Path, role: str) -> _File:
    extra = {TORCHSCRIPT_METADATA: ""}
    try:
        module = torch.jit.load(  # type: ignore[no-untyped-call]
            str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise GanError(f"{path} is a zip archive but not TorchScript ({first}); export the "
                       f"{role} with torch.jit.script and torch.jit.save") from None
    if role == "generator":
        z_dim = getattr(module, "z_dim", None)
        if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
            raise GanError(f"{path}: the TorchScript generator has no positive int attribute "
                           "z_dim; assign self.z_dim in its __init__ before scripting")
    metadata: dict[str, str] = {}
    raw = extra[TORCHSCRIPT_METADATA]
    if raw:
        try:
            loaded: Any = json.loads(raw)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            metadata = {str(key): str(value) for key, value in loaded.items()}
    return _File(path, {role: module.eval()}, metadata, "torchscript")


def _is_torchscript(path: Path, roles: tuple[str, ...]) -> bool:
    """Whether ``path`` is a TorchScript archive (else: read it as safetensors); GanError for
    a missing file or TorchScript asked for more than one role."""
    if not path.is_file():
        raise GanError(f"GAN file not found: {path}; pass an existing file, or no file for "
                       "the bundled digits GAN")
    if not zipfile.is_zipfile(path):
        return False
    if len(roles) != 1:
        raise GanError(f"{path} is TorchScript, which holds one module; pass it as the "
                       "generator or the discriminator, not as the combined file")
    return True


def _read(path: Path, roles: tuple[str, ...]) -> _File:
    if _is_torchscript(path, roles):
        return _read_torchscript(path, roles[0])
    return _read_safetensors(path, roles)


def load_gan(*, generator: Path | None = None, discriminator: Path | None = None,
             combined: Path | None = None) -> GanPair:
    """Open a generator and a discriminator (no file at all: the bundled digits GAN).

    ``combined`` is one safetensors file holding both, or one role to be completed by
    ``generator`` or ``discriminator``; a role given twice is refused. The pair's
    ``sha256`` is the sha256 of the files' hashes (in role order, each file once); its
    modules are in evaluation mode with trainable parameters."""
    if generator is None and discriminator is None and combined is None:
        combined = DEFAULT_GAN
    sources: dict[str, Path] = {}
    if combined is not None:
        _is_torchscript(combined, ROLES)
        sources = {role: combined for role in _file_roles(combined)}
    for role, path in (("generator", generator), ("discriminator", discriminator)):
        if path is None:
            continue
        if role in sources:
            raise GanError(f"the {role} is given twice (in the file holding both networks "
                           f"and as `{role}`); pass one of them")
        sources[role] = path
    for role in ROLES:
        if role not in sources:
            raise GanError(f"no {role} given: pass `{role}`, or one file holding both "
                           "generator and discriminator")
    files: dict[Path, _File] = {}
    for path in dict.fromkeys(sources[role] for role in ROLES):
        wanted = tuple(role for role in ROLES if sources[role] == path)
        files[path] = _read(path, wanted)
    modules = {role: files[sources[role]].modules[role] for role in ROLES}
    hashes = [file_sha256(path) for path in files]
    formats = {loaded.format for loaded in files.values()}
    metadata: dict[str, Any] = {}
    for path in reversed(files):  # the generator's file wins
        metadata.update(files[path].metadata)
    name = "+".join(dict.fromkeys(path.stem for path in files))
    pair = GanPair(modules["generator"], modules["discriminator"], name,
                   hashlib.sha256("\n".join(hashes).encode()).hexdigest(),
                   formats.pop() if len(formats) == 1 else "mixed", metadata)
    logger.debug("loaded GAN %s (%s) from %s", pair.name, pair.format,
                 ", ".join(str(path) for path in files))
    return pair
