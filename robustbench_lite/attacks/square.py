"""Square Attack: score-based black-box random search.

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020. Starting from a perturbation on the surface
of the eps-ball, every iteration changes the perturbation inside one randomly placed square
(Linf: the square is set to ±eps per channel; L2: the L2 mass of two squares is redistributed
into one of them) and keeps the change only if it lowers the margin loss. The side of the
square follows a piecewise-constant schedule that shrinks it as the search goes on. The margin
is the objective's (`Objective.margin`), so any task works; a sample counts as broken once
its margin is negative. Only forward passes: no gradients. Cost: at most ``n_queries``
forward passes per sample and restart; samples leave the batch as soon as they are broken.
"""

from __future__ import annotations

import math

import torch

from robustbench_lite.attacks.base import Attack, AttackKind
from robustbench_lite.errors import AttackError
from robustbench_lite.tasks.objective import ModelFn, Objective
from robustbench_lite.threat import Norm, ThreatModel

#: Iterations (on a 10 000-iteration scale) after which the paper halves p.
_P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
#: Linf: how many times a sign draw that would leave the square unchanged is redrawn.
_MAX_SIGN_REDRAWS = 32


def p_schedule(p_init: float, iteration: int, n_queries: int) -> float:
    """The paper's fraction of pixels changed at ``iteration``: ``p_init`` halved at
    iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of a 10 000-query budget
    (rescaled to ``n_queries``)."""
    scaled = int(iteration / n_queries * 10000)
    halvings = sum(scaled > step for step in _P_HALVINGS)
    return p_init * 0.5 ** halvings


def _pseudo_gaussian(rows: int, cols: int, device: torch.device,
                     dtype: torch.dtype) -> torch.Tensor:
    """Sum of concentric rectangles with weights 1/(k+1)^2 (the paper's "pseudo-Gaussian"
    block), unit L2 norm; all zeros for an empty block."""
    if rows == 0 or cols == 0:
        return torch.zeros(rows, cols, device=device, dtype=dtype)
    rings = max(rows // 2, cols // 2) + 1
    weights = 1.0 / torch.arange(1, rings + 1, device=device, dtype=dtype) ** 2
    # tail[d] = sum_{k >= d} 1/(k+1)^2: a pixel at ring distance d lies in rectangles d..rings-1
    tail = weights.flip(0).cumsum(0).flip(0)
    row_dist = (torch.arange(rows, device=device) - rows // 2).abs()
    col_dist = (torch.arange(cols, device=device) - cols // 2).abs()
    block = tail[torch.maximum(row_dist.view(-1, 1), col_dist.view(1, -1))]
    unit: torch.Tensor = block / torch.linalg.vector_norm(block)
    return unit


def meta_pattern(side: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The paper's L2 "meta" pattern of a ``side`` x ``side`` square: a pseudo-Gaussian
    block on the top half and its negative on the bottom half, unit L2 norm."""
    top = _pseudo_gaussian(side // 2, side, device, dtype)
    bottom = -_pseudo_gaussian(side - side // 2, side, device, dtype)
    pattern = torch.cat([top, bottom], dim=0)
    unit: torch.Tensor = pattern / torch.linalg.vector_norm(pattern).clamp_min(1e-12)
    return unit


def _random_signs(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor
                  ) -> torch.Tensor:
    bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
    return (2 * bits - 1).to(like.dtype)


def _per_channel_norm(delta: torch.Tensor) -> torch.Tensor:
    """L2 norm over each sample's and channel's pixels, shape ``(N, C, 1, 1)``."""
    return delta.pow(2).sum(dim=(2, 3), keepdim=True).sqrt()


def _per_sample_norm(delta: torch.Tensor) -> torch.Tensor:
    norms: torch.Tensor = torch.linalg.vector_norm(delta.flatten(1), dim=1)
    return norms.view(-1, 1, 1, 1)


class SquareAttack(Attack):
    """Square Attack (Linf, L2), score-based: it sees only the model's outputs.

    Args:
        n_queries: query budget per sample and restart, the initial query included
            (default 5000, as in AutoAttack).
        p_init: initial fraction of the image's pixels inside the square (default 0.8, the
            value AutoAttack uses for both norms). The paper uses 0.05 for Linf and 0.1 for
            L2 on CIFAR-10/ImageNet-sized images, where a square that small still covers many
            pixels. On tiny images (8x8 digits) 0.8 works better: it starts with a 7x7
            square, and the schedule still shrinks it to one pixel (Linf) or the 3x3 minimum
            (L2) as the budget is spent.
        restarts: independent runs on the samples still unbroken; the result with the lowest
            margin is kept (default 1).

    The side of the square is ``round(sqrt(p * H * W))``, at least 1 (Linf) or 3 and odd
    (L2), at most ``min(H, W)``; ``p`` halves at iterations 10, 50, 200, 500, 1000, 2000, 4000,
    6000 and 8000 of 10 000, rescaled to ``n_queries``. Loss: the objective's margin
    (`Objective.margin`; for classification ``z_y - max_{i!=y} z_i``, targeted ``max_{i!=t}
    z_i - z_t``), minimised; a sample is broken once it is negative and is not queried
    again. Square positions are drawn per sample. Inputs are ``(N, C, H, W)``,
    ``(N, H, W)`` or ``(N, D)`` (treated as one channel, one row).
    Cost: at most ``n_queries * restarts`` forward passes per sample, no backward pass.
    """

    name = "square"
    norms = frozenset({Norm.LINF, Norm.L2})
    kind = AttackKind.SCORE

    def __init__(self, *, n_queries: int = 5000, p_init: float = 0.8, restarts: int = 1
                 ) -> None:
        if n_queries < 1 or restarts < 1 or not 0 < p_init <= 1:
            raise AttackError("square needs n_queries >= 1, restarts >= 1 and "
                              "0 < p_init <= 1")
        self.n_queries = n_queries
        self.p_init = p_init
        self.restarts = restarts
        self._set_params(n_queries=n_queries, p_init=p_init, restarts=restarts)

    def run(self, model: ModelFn, x: torch.Tensor, objective: Objective, threat: ThreatModel,
            generator: torch.Generator) -> torch.Tensor:
        if threat.norm not in self.norms:
            raise AttackError(f"square supports linf and l2, not {threat.norm.value}")
        if threat.eps == 0 or len(x) == 0 or x[0].numel() == 0:
            return x.clone()
        shape = x.shape
        images = self._as_images(x)

        def model4d(batch: torch.Tensor) -> torch.Tensor:
            return model(batch.reshape(-1, *shape[1:]))

        with torch.no_grad():
            best = images.clone()
            best_loss = torch.full((len(x),), float("inf"), device=x.device)
            remaining = torch.arange(len(x), device=x.device)
            for _ in range(self.restarts):
                x_adv, loss = self._one_run(model4d, images[remaining],
                                            objective.select(remaining), threat, generator)
                better = loss < best_loss[remaining]
                best[remaining[better]] = x_adv[better]
                best_loss[remaining[better]] = loss[better].to(best_loss.dtype)
                remaining = remaining[best_loss[remaining] >= 0]
                if len(remaining) == 0:
                    break
            return threat.project(best.reshape(shape), x)

    @staticmethod
    def _as_images(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return x
        if x.dim() == 3:
            return x.unsqueeze(1)
        if x.dim() == 2:
            return x.view(len(x), 1, 1, -1)
        raise AttackError(f"square needs inputs of shape (N, C, H, W), (N, H, W) or (N, D), "
                          f"got {tuple(x.shape)}")

    def _one_run(self, model: ModelFn, x: torch.Tensor, objective: Objective,
                 threat: ThreatModel, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run on 4-d images; returns the best images and their margins."""
        if threat.norm is Norm.LINF:
            x_best = self._init_linf(x, threat, generator)
        else:
            x_best = self._init_l2(x, threat, generator)
        loss = objective.margin(model(x_best))
        height, width = x.shape[2], x.shape[3]
        for iteration in range(self.n_queries - 1):
            active = (loss >= 0).nonzero().squeeze(1)
            if len(active) == 0:
                break
            p = p_schedule(self.p_init, iteration, self.n_queries)
            side = round(math.sqrt(p * height * width))
            x_act, best_act = x[active], x_best[active]
            if threat.norm is Norm.LINF:
                side = min(max(side, 1), height, width)
                candidate = self._step_linf(x_act, best_act, side, threat, generator)
            else:
                side = max(side, 3)
                side = min(side + (side % 2 == 0), height, width)
                candidate = self._step_l2(x_act, best_act, side, threat, generator)
            new_loss = objective.select(active).margin(model(candidate))
            improved = new_loss < loss[active]
            x_best[active[improved]] = candidate[improved]
            loss[active[improved]] = new_loss[improved]
        return x_best, loss

    # -- windows ------------------------------------------------------------------------

    @staticmethod
    def _window(x: torch.Tensor, side: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A random ``side`` x ``side`` square per sample: its mask ``(N, 1, H, W)`` and the
        per-pixel offsets inside it (rows ``(N, H)``, columns ``(N, W)``, clamped)."""
        count, _, height, width = x.shape
        top = torch.randint(0, height - side + 1, (count, 1), generator=generator,
                            device=x.device)
        left = torch.randint(0, width - side + 1, (count, 1), generator=generator,
                             device=x.device)
        rows = torch.arange(height, device=x.device).view(1, -1) - top
        cols = torch.arange(width, device=x.device).view(1, -1) - left
        in_rows = (rows >= 0) & (rows < side)
        in_cols = (cols >= 0) & (cols < side)
        mask = (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(1)
        return mask, rows.clamp(0, side - 1), cols.clamp(0, side - 1)

    # -- Linf ---------------------------------------------------------------------------

    @staticmethod
    def _init_linf(x: torch.Tensor, threat: ThreatModel, generator: torch.Generator
                   ) -> torch.Tensor:
        """Vertical stripes: one random ±eps per sample, channel and column."""
        count, channels, _, width = x.shape
        stripes = threat.eps * _random_signs((count, channels, 1, width), generator, x)
        return threat.project(x + stripes, x)

    @staticmethod
    def _step_linf(x: torch.Tensor, x_best: torch.Tensor, side: int, threat: ThreatModel,
                   generator: torch.Generator) -> torch.Tensor:
        """Set a random square to ±eps per channel; signs that would not change anything
        (after clipping to the pixel box) are redrawn, as in the paper."""
        count, channels = x.shape[:2]
        mask, _, _ = SquareAttack._window(x, side, generator)

        def fill(values: torch.Tensor) -> torch.Tensor:
            return torch.where(mask, (x + values).clamp(threat.lower, threat.upper), x_best)

        values = threat.eps * _random_signs((count, channels, 1, 1), generator, x)
        candidate = fill(values)
        for _ in range(_MAX_SIGN_REDRAWS):
            same = ((candidate - x_best).abs() < 1e-7).flatten(1).all(dim=1)
            if not bool(same.any()):
                break
            fresh = threat.eps * _random_signs((count, channels, 1, 1), generator, x)
            values = torch.where(same.view(-1, 1, 1, 1), fresh, values)
            candidate = fill(values)
        return candidate

    # -- L2 -----------------------------------------------------------------------------

    @staticmethod
    def _patterns(count: int, side: int, generator: torch.Generator, like: torch.Tensor
                  ) -> torch.Tensor:
        """``count`` meta patterns ``(count, side, side)``, each transposed with
        probability 1/2."""
        pattern = meta_pattern(side, like.device, like.dtype)
        flip = torch.rand(count, generator=generator, device=like.device) < 0.5
        return torch.where(flip.view(-1, 1, 1), pattern.t(), pattern)

    @staticmethod
    def _to_eps_sphere(x: torch.Tensor, delta: torch.Tensor, threat: ThreatModel
                       ) -> torch.Tensor:
        scaled = delta * (threat.eps / _per_sample_norm(delta).clamp_min(1e-12))
        return threat.project(x + scaled, x)

    @staticmethod
    def _init_l2(x: torch.Tensor, threat: ThreatModel, generator: torch.Generator
                 ) -> torch.Tensor:
        """A centred grid of blocks of side ``min(H, W) // 5`` (at least 1), each a meta
        pattern with a random sign per channel, scaled to L2 norm eps."""
        count, channels, height, width = x.shape
        side = max(min(height, width) // 5, 1)
        grid_h, grid_w = height // side, width // side
        top, left = (height - grid_h * side) // 2, (width - grid_w * side) // 2
        patterns = SquareAttack._patterns(count * grid_h * grid_w, side, generator, x)
        patterns = patterns.view(count, 1, grid_h, grid_w, side, side)
        signs = _random_signs((count, channels, grid_h, grid_w, 1, 1), generator, x)
        blocks = (patterns * signs).permute(0, 1, 2, 4, 3, 5)
        delta = torch.zeros_like(x)
        delta[:, :, top:top + grid_h * side, left:left + grid_w * side] = blocks.reshape(
            count, channels, grid_h * side, grid_w * side)
        return SquareAttack._to_eps_sphere(x, delta, threat)

    @staticmethod
    def _step_l2(x: torch.Tensor, x_best: torch.Tensor, side: int, threat: ThreatModel,
                 generator: torch.Generator) -> torch.Tensor:
        """Empty a second random square and put its L2 mass (plus whatever is left of the
        budget) into the first, as a fresh meta pattern added to the first square's old
        content; then rescale the whole perturbation to norm eps."""
        count, channels = x.shape[:2]
        delta = x_best - x
        mask, rows, cols = SquareAttack._window(x, side, generator)
        mask_2, _, _ = SquareAttack._window(x, side, generator)
        old = delta * mask
        old_norm = _per_channel_norm(old)
        union_norm = _per_channel_norm(delta * (mask | mask_2))
        spare = (threat.eps ** 2 - _per_sample_norm(delta) ** 2).clamp_min(0) / channels
        target_norm = (spare + union_norm ** 2).sqrt()
        patterns = SquareAttack._patterns(count, side, generator, x)
        index = torch.arange(count, device=x.device).view(-1, 1, 1)
        placed = patterns[index, rows.unsqueeze(2), cols.unsqueeze(1)].unsqueeze(1) * mask
        signs = _random_signs((count, channels, 1, 1), generator, x)
        new = placed * signs + old / (old_norm + 1e-10)
        new = new * (target_norm / _per_channel_norm(new).clamp_min(1e-12))
        delta = torch.where(mask, new, torch.where(mask_2, torch.zeros_like(delta), delta))
        return SquareAttack._to_eps_sphere(x, delta, threat)
