"""Planted neurons: a real ``torch.nn.Module`` whose units fire for known concepts.

The model reads the code map (all concept masks packed per pixel) that the synth source appends
to each RGB image and outputs ``(B, units, 28, 28)`` like a conv layer (layer name ``units``). A
unit's map is the exact fraction of each 8x8 cell covered by its logical form (see
:mod:`milan_plugin.synth.logic`), ramped up between 50 % and 90 % cover, with an inhibitory
surround, scaled, plus a background level and seeded noise read from the source's noise channel,
so the same image always gives the same activations in any batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from milan_plugin.errors import InvalidInputError
from milan_plugin.synth.logic import FormTable, LogicalForm, image_gates

RESOLUTION = 28
RAMP_LOW, RAMP_HIGH = 0.5, 0.9
#: Cells next to a unit's concept are pushed down by this fraction of the unit's strength (an
#: inhibitory surround, as in real conv features), so upsampled masks end at the concept's edge.
SURROUND = 1.0


class PlantedUnitLayer(nn.Module):
    """The layer that holds the planted units (captured by the exemplar engine as ``units``)."""

    def __init__(self, forms: Sequence[LogicalForm], seed: int) -> None:
        super().__init__()
        if not forms:
            raise ValueError("a planted layer needs at least one logical form")
        self.forms = list(forms)
        table = FormTable.from_forms(forms)
        for name in ("first_family", "first_value", "second_family", "second_value", "operator"):
            self.register_buffer(name, getattr(table, name))
        generator = torch.Generator().manual_seed(seed)
        count = len(forms)
        self.register_buffer("strength", 0.8 + 0.7 * torch.rand(count, generator=generator))
        self.register_buffer("background", 0.15 * torch.rand(count, generator=generator))
        self.register_buffer("noise_scale", 0.02 + 0.05 * torch.rand(count, generator=generator))
        self.register_buffer("noise_field", torch.randint(0, 64, (count,), generator=generator))
        self.register_buffer("noise_sign", torch.randint(0, 2, (count,), generator=generator) * 2.0 - 1.0)

    def extra_repr(self) -> str:
        ramp = f"({RAMP_LOW}, {RAMP_HIGH})"
        return f"units={len(self.forms)}, resolution={RESOLUTION}, ramp={ramp}, surround={SURROUND}"

    def table(self) -> FormTable:
        return FormTable(
            self.first_family, self.first_value, self.second_family, self.second_value, self.operator
        )

    def coverage(self, inputs: torch.Tensor) -> torch.Tensor:
        """Fraction of each cell covered by each unit's form: ``(B, units, 28, 28)`` in [0, 1].

        Pooling the exact masks over 8x8 cells is the blur: a unit sees its concept at conv resolution.
        """
        if (
            inputs.dim() != 4
            or inputs.shape[1] != 5
            or inputs.shape[2] % RESOLUTION
            or inputs.shape[3] % RESOLUTION
        ):
            raise InvalidInputError(
                "planted neurons read RGB + code map + noise (5 channels, sides a multiple of "
                f"{RESOLUTION}); got {tuple(inputs.shape)}. Feed them batches of the synth source "
                "(`synth:scenes?seed=0&n=1000`)."
            )
        batch, _, height, width = inputs.shape
        codes = inputs[:, 3].round().long()
        # Distinct codes by counting (codes are small integers): much faster than sorting.
        distinct = torch.nonzero(torch.bincount(codes.reshape(-1))).reshape(-1)
        position = torch.zeros(int(distinct[-1]) + 1, dtype=torch.long, device=inputs.device)
        position[distinct] = torch.arange(len(distinct), device=inputs.device)
        inverse = position[codes]
        cell_h, cell_w = height // RESOLUTION, width // RESOLUTION
        rows = torch.arange(height, device=inputs.device) // cell_h
        cols = torch.arange(width, device=inputs.device) // cell_w
        cell = rows[:, None] * RESOLUTION + cols[None, :]
        cells = RESOLUTION * RESOLUTION
        image = torch.arange(batch, device=inputs.device)[:, None, None]
        flat = (image * len(distinct) + inverse) * cells + cell
        counts = torch.bincount(flat.reshape(-1), minlength=batch * len(distinct) * cells)
        fraction = counts.view(batch, len(distinct), cells).float() / (cell_h * cell_w)
        present = fraction.sum(dim=2) > 0
        fire_a, gate_a, fire_b, gate_b = self.table().lookup(distinct.cpu())
        fire_a, gate_a, fire_b, gate_b = (t.to(inputs.device) for t in (fire_a, gate_a, fire_b, gate_b))
        # The gates are per image and unit, so they fold into one weight matrix per image: one bmm.
        weights = fire_a.float()[None] * image_gates(present, gate_a)[:, :, None]
        weights += fire_b.float()[None] * image_gates(present, gate_b)[:, :, None]
        return torch.bmm(weights, fraction).view(batch, -1, RESOLUTION, RESOLUTION)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        blurred = self.coverage(inputs)
        batch, units = blurred.shape[:2]
        noise = inputs[:, -1]
        fields = noise.reshape(batch, RESOLUTION, noise.shape[1] // RESOLUTION, RESOLUTION, -1)
        fields = fields.permute(0, 2, 4, 1, 3).reshape(batch, -1, RESOLUTION, RESOLUTION)
        unit_noise = fields[:, self.noise_field % fields.shape[1]]
        noise_weight = self.noise_scale * self.noise_sign
        background = self.background[None, :, None, None].expand(batch, units, RESOLUTION, RESOLUTION)
        output = torch.addcmul(background, unit_noise, noise_weight[None, :, None, None])
        # Most units see nothing of their concept in most images (cover <= RAMP_LOW everywhere):
        # those maps are background + noise, and only the rest get a response.
        image, unit = torch.nonzero(blurred.amax(dim=(2, 3)) > RAMP_LOW, as_tuple=True)
        # A ramp from 0 at half cover to 1 at 90 %: masks thresholded anywhere on it stay inside the concept.
        active = blurred[image, unit].sub_(RAMP_LOW).div_(RAMP_HIGH - RAMP_LOW).clamp_(0.0, 1.0)
        surround = F.max_pool2d(active[:, None], kernel_size=3, stride=1, padding=1)[:, 0].sub_(active)
        active = active.sub_(surround.mul_(SURROUND)).mul_(self.strength[unit, None, None])
        active = active.add_(self.background[unit, None, None])
        output[image, unit] = active.addcmul_(unit_noise[image, unit], noise_weight[unit, None, None])
        return output


class PlantedNeurons(nn.Module):
    """A model with one layer, ``units``, of planted neurons with known logical forms.

    ``model.forms[u]`` is unit u's ground truth; feed it batches of the synth source.
    """

    def __init__(self, forms: Sequence[LogicalForm], seed: int = 0) -> None:
        super().__init__()
        self.units = PlantedUnitLayer(forms, seed)

    @property
    def forms(self) -> list[LogicalForm]:
        return self.units.forms

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.units(inputs)
