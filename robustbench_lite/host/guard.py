"""Notice and undo what a plugin changed in the model or in torch's process-wide settings.

A `ModelGuard` snapshots the model once (every parameter and buffer, each module's training
flag and forward hooks) together with torch's global settings that change what later code
computes (gradient mode, default dtype, deterministic algorithms). After a plugin ran,
`ModelGuard.changes` lists what differs and `ModelGuard.restore` puts the snapshot back.
The engine fails (and never stores) a cell whose attack changed anything.

The snapshot costs one copy of the model's parameters and buffers on its device; a check
compares every tensor, which is cheap next to any attack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from robustbench_lite.errors import ModelChangedError


@dataclass(frozen=True)
class TorchSettings:
    """The process-wide torch settings a plugin could leave changed."""

    grad_enabled: bool
    default_dtype: torch.dtype
    deterministic: bool

    @classmethod
    def current(cls) -> TorchSettings:
        return cls(torch.is_grad_enabled(), torch.get_default_dtype(),
                   torch.are_deterministic_algorithms_enabled())

    def apply(self) -> None:
        torch.set_grad_enabled(self.grad_enabled)
        torch.set_default_dtype(self.default_dtype)
        torch.use_deterministic_algorithms(self.deterministic)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shape, dtype, device and values (NaN equal to NaN at the same place)."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if torch.equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        both_nan = torch.isnan(a) & torch.isnan(b)
        return bool(((a == b) | both_nan).all())
    return False


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attribute = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attribute


class ModelGuard:
    """A snapshot of ``module`` and of torch's settings, to compare against and restore."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.parameters = {name: p.detach().clone()
                           for name, p in module.named_parameters(remove_duplicate=False)}
        self.buffers = {name: b.detach().clone()
                        for name, b in module.named_buffers(remove_duplicate=False)}
        self.modules = dict(module.named_modules(remove_duplicate=False))
        self.training = {name: m.training for name, m in self.modules.items()}
        self.hooks = {name: (set(m._forward_hooks), set(m._forward_pre_hooks))
                      for name, m in self.modules.items()}
        self.settings = TorchSettings.current()

    def changes(self) -> list[str]:
        """What differs from the snapshot, one short phrase each (empty: nothing)."""
        found: list[str] = []
        current_modules = dict(self.module.named_modules(remove_duplicate=False))
        if set(current_modules) != set(self.modules) or any(
                current_modules[name] is not m for name, m in self.modules.items()):
            found.append("its submodules were replaced")
        for kind, reference, current in (
                ("parameter tensor(s)", self.parameters,
                 dict(self.module.named_parameters(remove_duplicate=False))),
                ("buffer(s)", self.buffers,
                 dict(self.module.named_buffers(remove_duplicate=False)))):
            changed = _changed(reference, current)
            if changed:
                found.append(f"{len(changed)} {kind} changed ({_names(changed)})")
        flipped = sorted(name or "(root)" for name, m in self.modules.items()
                         if m.training != self.training[name])
        if flipped:
            found.append(f"training mode switched on {len(flipped)} module(s) "
                         f"({_names(flipped)})")
        hooked = sorted(name or "(root)" for name, m in self.modules.items()
                        if (set(m._forward_hooks), set(m._forward_pre_hooks))
                        != self.hooks[name])
        if hooked:
            found.append(f"forward hooks changed on {len(hooked)} module(s) "
                         f"({_names(hooked)})")
        settings = TorchSettings.current()
        if settings != self.settings:
            found.append("torch's global settings changed "
                         f"({_settings_diff(self.settings, settings)})")
        return found

    def restore(self) -> None:
        """Put the snapshot back; `ModelChangedError` if the model's structure changed so
        that it cannot be (reload the model instead)."""
        for name, module in self.modules.items():
            module.training = self.training[name]
            forward, pre = self.hooks[name]
            for handle in set(module._forward_hooks) - forward:
                del module._forward_hooks[handle]
            for handle in set(module._forward_pre_hooks) - pre:
                del module._forward_pre_hooks[handle]
        try:
            with torch.no_grad():
                self._restore_tensors()
        except (AttributeError, RuntimeError, TypeError, KeyError) as exc:
            raise ModelChangedError(f"the model could not be restored after a plugin "
                                    f"changed it ({type(exc).__name__}: {exc}); rerun "
                                    "without that plugin") from None
        self.settings.apply()  # last: leaving no_grad above restores the mode it found
        remaining = self.changes()
        if remaining:
            raise ModelChangedError("the model could not be restored after a plugin changed "
                                    f"it ({'; '.join(remaining)}); rerun without that plugin")

    def _restore_tensors(self) -> None:
        for name, reference in [*self.parameters.items(), *self.buffers.items()]:
            owner, attribute = _owner(self.module, name)
            current = getattr(owner, attribute, None)
            if isinstance(current, torch.Tensor) and current.shape == reference.shape \
                    and current.dtype == reference.dtype and current.device == reference.device:
                current.copy_(reference)
            elif name in self.parameters:
                setattr(owner, attribute, nn.Parameter(reference.clone(), requires_grad=False))
            else:
                owner.register_buffer(attribute, reference.clone())


def _changed(reference: Mapping[str, torch.Tensor],
             current: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of tensors that differ from, are missing in or were added to ``reference``."""
    changed = sorted(name for name, ref in reference.items()
                     if name not in current or not _same(current[name].detach(), ref))
    return changed + sorted(set(current) - set(reference))


def _names(names: list[str], shown: int = 3) -> str:
    listed = ", ".join(names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _settings_diff(before: TorchSettings, after: TorchSettings) -> str:
    parts = []
    if before.grad_enabled != after.grad_enabled:
        parts.append(f"gradients {'enabled' if after.grad_enabled else 'disabled'}")
    if before.default_dtype != after.default_dtype:
        parts.append(f"default dtype {after.default_dtype}")
    if before.deterministic != after.deterministic:
        parts.append("deterministic algorithms "
                     f"{'on' if after.deterministic else 'off'}")
    return ", ".join(parts)
