"""Training images: every photo under a folder, decoded once into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


class ImageFolder:
    """All images under `roots` (recursive) as uint8 CHW tensors, with random crops.

    Images smaller than a crop in either dimension are skipped and counted.
    """

    def __init__(self, roots: list[Path], crop: int, seed: int = 0) -> None:
        self.crop = crop
        self.images: list[torch.Tensor] = []
        self.skipped = 0
        paths = sorted(p for root in roots for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in paths:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image).convert("RGB")
                if min(image.size) < crop:
                    self.skipped += 1
                    continue
                self.images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous())
        if not self.images:
            raise ValueError(f"no training images of at least {crop}×{crop} under {', '.join(map(str, roots))}")
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, size: int) -> torch.Tensor:
        """`size` random crops with random horizontal flips, float in [0, 1]."""
        g = self.generator
        crops = []
        for i in torch.randint(len(self.images), (size,), generator=g).tolist():
            image = self.images[i]
            top = int(torch.randint(image.shape[1] - self.crop + 1, (1,), generator=g))
            left = int(torch.randint(image.shape[2] - self.crop + 1, (1,), generator=g))
            crop = image[:, top : top + self.crop, left : left + self.crop]
            if torch.rand((), generator=g) < 0.5:
                crop = crop.flip(-1)
            crops.append(crop)
        return torch.stack(crops).float().div_(255)
