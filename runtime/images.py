"""Images for the recipes: each file decoded once per process, lazily, at the size asked for.

A task with images has a column holding each row's file path (runtime/data.py builds it). A
recipe's `Features.encode` reads pixels through `load_images(paths, size)`: RGB, uint8, each
image resized to size x size, so the track's kernel decodes a file once however many folds
and attempts use it. A file that is missing or does not decode is a black image, counted in
`stats()`, rather than a failed run: one broken file among thousands should cost one row's
signal, not the submission.

Generated modules import this module; solution.py inlines it from this very source, so it
depends on numpy and Pillow alone.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import numpy as np

# decoded images kept per process; beyond this, images are decoded again when asked again
CACHE_MB = float(os.environ.get("IML_IMAGE_CACHE_MB", 2048))

_cache: dict[tuple[str, int], np.ndarray] = {}
_cached_bytes = 0
_failed: dict[str, str] = {}


def decode(path: str, size: int) -> np.ndarray:
    """One image as (size, size, 3) uint8; black when the file is missing or unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (size, size))  # decode big JPEGs at a fraction of their size: far faster
            img.seek(0)  # the first frame of a GIF or a multi-page TIFF
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                values = np.asarray(img, dtype=np.float64)
                low, high = np.percentile(values, (0.5, 99.5)) if values.size else (0.0, 1.0)
                scaled = np.clip((values - low) / max(high - low, 1e-9) * 255, 0, 255).astype(np.uint8)
                img = Image.fromarray(scaled)
            rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 - one bad file is one black image, and counted
        _failed[str(path)] = f"{type(e).__name__}: {e}"[:200]
        return np.zeros((size, size, 3), dtype=np.uint8)


def load_images(paths: Iterable[str], size: int, threads: int | None = None) -> np.ndarray:
    """The images at `paths` as (n, size, size, 3) uint8, decoded with a few threads (Pillow
    releases the GIL while it decodes) and cached for the rest of the process."""
    global _cached_bytes
    paths = [str(p) for p in paths]
    size = int(size)
    out = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    todo = [i for i, p in enumerate(paths) if (p, size) not in _cache]
    for i, p in enumerate(paths):
        if (p, size) in _cache:
            out[i] = _cache[(p, size)]
    if todo:
        workers = threads or max(1, min(8, int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))))
        unique = list(dict.fromkeys(paths[i] for i in todo))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            decoded = dict(zip(unique, pool.map(lambda p: decode(p, size), unique)))
        for i in todo:
            out[i] = decoded[paths[i]]
        for p, image in decoded.items():
            if _cached_bytes + image.nbytes <= CACHE_MB * 1e6:
                _cache[(p, size)] = image
                _cached_bytes += image.nbytes
    return out


def stats() -> dict:
    """What this process decoded: cached images, their memory, and the files that failed."""
    return {"cached": len(_cache), "cached_mb": round(_cached_bytes / 1e6, 1), "failed": len(_failed),
            "failed_examples": dict(list(_failed.items())[:5])}


# packages whose pretrained image encoders a user's setting may name ("<package>:<model>"); not
# dependencies of iML: used only where a user installed one and cached its weights
HUB_PACKAGES = ("timm", "torchvision")


def hub_encoder(name: str):
    """The pretrained encoder `name` ("timm:<model>" or "torchvision:<model>") as a torch module
    that returns features, its classifier head removed. Nothing downloads offline: the weights
    must be in the package's local cache. ValueError, in one line, when the package is missing."""
    import importlib

    package, _, model = name.partition(":")
    if package not in HUB_PACKAGES:
        raise ValueError(f"image_model {name!r}: a hub name starts with one of {', '.join(HUB_PACKAGES)} and a colon")
    try:
        hub = importlib.import_module(package)
    except ImportError:
        raise ValueError(f"image_model {name!r} needs the {package} package (pip install {package})") from None
    if package == "timm":
        return hub.create_model(model, pretrained=True, num_classes=0)
    import torch

    net = hub.models.get_model(model, weights="DEFAULT")
    for head in ("fc", "classifier", "heads", "head"):
        if hasattr(net, head):
            setattr(net, head, torch.nn.Identity())
    return net
