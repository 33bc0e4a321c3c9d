"""A small capsule network: the kind of model the generic adapter cannot read as it is.

``PrimaryCapsules`` returns a dict. Its units are capsule *types*, and the activation of a
capsule is the length of its pose vector, stored as ``(batch, positions, types)`` with the
feature-map positions flattened row-major. MILAN needs ``(batch, types, rows, cols)``.
"""

import torch
from torch import nn


class PrimaryCapsules(nn.Module):
    def __init__(self, channels: int, types: int, dim: int) -> None:
        super().__init__()
        self.types, self.dim = types, dim
        self.poses = nn.Conv2d(channels, types * dim, kernel_size=3, stride=2, padding=1)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        poses = self.poses(features)
        batch, _, rows, cols = poses.shape
        poses = poses.view(batch, self.types, self.dim, rows * cols).permute(0, 3, 1, 2)
        return {"poses": poses, "lengths": poses.norm(dim=-1)}


class CapsuleClassifier(nn.Module):
    def __init__(self, classes: int = 10, types: int = 8, dim: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, kernel_size=3, padding=1), nn.ReLU())
        self.capsules = PrimaryCapsules(16, types, dim)
        self.head = nn.Linear(types, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lengths = self.capsules(self.stem(images))["lengths"]
        return self.head(lengths.mean(dim=1))
