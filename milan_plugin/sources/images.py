"""Turning decoded pictures into what the model sees and what a describer is shown.

MILAN's exemplar transform is Resize(256) -> CenterCrop(224) -> ToTensor -> ImageNet mean/std.
The model gets the normalised crop; ``images()`` gives back the *same* crop as uint8, so an
activation map upsampled to the crop lines up with the pixels shown next to it.

Pictures with transparency (RGBA, LA, palette images with a transparent colour) are composited
over a flat background before anything else. The default background is the ImageNet mean colour
(124, 116, 104), a neutral grey that normalises to about zero, so a cut-out's empty surround gives
the model as little signal as possible; ``background="white"`` or an RGB tuple picks another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NEUTRAL_GREY = (124, 116, 104)
NAMED_BACKGROUNDS = {"grey": NEUTRAL_GREY, "gray": NEUTRAL_GREY, "white": (255, 255, 255), "black": (0, 0, 0)}


def background_colour(background: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """An RGB triple for a background given by name or as a triple."""
    from milan_plugin.errors import InvalidInputError

    if isinstance(background, str):
        if background.lower() not in NAMED_BACKGROUNDS:
            raise InvalidInputError(
                f"unknown background {background!r}; use one of {sorted(NAMED_BACKGROUNDS)} or an RGB tuple"
            )
        return NAMED_BACKGROUNDS[background.lower()]
    colour = tuple(int(value) for value in background)
    if len(colour) != 3 or not all(0 <= value <= 255 for value in colour):
        raise InvalidInputError(f"background must be three integers in 0..255, got {background!r}")
    return colour  # type: ignore[return-value]


def to_rgb(image: Image.Image, background: tuple[int, int, int] = NEUTRAL_GREY) -> Image.Image:
    """An RGB copy of ``image``: transparency composited over ``background``, grey expanded.

    Animated images (GIF, WebP) contribute their first frame.
    """
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda value: value * (1 / 256)).convert("L")
    return image.convert("RGB")


@dataclass(frozen=True)
class Preprocessing:
    """The crop every built-in image source applies, and the normalisation for the model.

    ``resize_size`` defaults to ``round(image_size * 256 / 224)`` (256 for the usual 224 crop).
    """

    image_size: int = 224
    resize_size: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        from milan_plugin.errors import InvalidInputError

        if int(self.image_size) <= 0:
            raise InvalidInputError(f"image_size must be a positive integer, got {self.image_size!r}")
        if self.resize_size is not None and int(self.resize_size) < int(self.image_size):
            raise InvalidInputError(
                f"resize_size ({self.resize_size}) must be at least image_size ({self.image_size})"
            )

    @property
    def resize_to(self) -> int:
        return int(self.resize_size or round(self.image_size * 256 / 224))

    def crop(self, image: Image.Image) -> torch.Tensor:
        """The uint8 ``(3, image_size, image_size)`` centre crop of an RGB picture."""
        import torchvision.transforms.v2.functional as F

        resized = F.resize(F.pil_to_tensor(image), [self.resize_to], antialias=True)
        return F.center_crop(resized, [self.image_size, self.image_size])

    def crop_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """The same crop for a uint8 ``(N, 3, H, W)`` batch."""
        import torchvision.transforms.v2.functional as F

        if tuple(images.shape[-2:]) == (self.image_size, self.image_size):
            return images
        resized = F.resize(images, [self.resize_to], antialias=True)
        return F.center_crop(resized, [self.image_size, self.image_size])

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 crops ``(N, 3, S, S)`` -> float32 model inputs."""
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (crops.float() / 255 - mean) / std

    def settings(self) -> dict[str, Any]:
        """What goes into a source fingerprint."""
        return {
            "image_size": int(self.image_size),
            "resize_to": self.resize_to,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` resized to ``(N, 3, size, size)`` (unchanged if already that size)."""
    import torchvision.transforms.v2.functional as F

    if tuple(images.shape[-2:]) == (size, size):
        return images
    return F.resize(images, [size, size], antialias=True)
