"""Image folders: one sub-folder per class (``cats/001.png``, ``dogs/7.jpg``), read with Pillow (which
matplotlib already depends on) into one in-memory array (N, C, H, W) of floats in [0, 1].

Holding the images in memory keeps batching a tensor index; folders larger than the data memory limit
(:func:`layerforge.limits.data_memory_limit`) are refused with a hint to shrink ``image_size``. The channel
count comes from
the model's ``input_shape`` ([1, H, W] → grayscale, [3, H, W] → RGB), else from the images.

Each image's size is read from its header first: one that would decode past the data memory limit, or
past Pillow's decompression-bomb bound, is refused before a pixel is decoded; so is a folder whose
images would not fit in memory together.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..files import open_regular
from .fileio import check_memory
from .raw import RawData, display

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _pil():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:  # pragma: no cover - pillow ships with matplotlib
        raise DataError("reading image folders needs Pillow", hint="pip install pillow") from e
    return Image, UnidentifiedImageError


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def class_folders(root: Path, where: str) -> list[Path]:
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        loose = list_images(root)
        raise DataError(
            f"{where}: expected one sub-folder per class (e.g. {where}/cat/1.png), found "
            + (f"{len(loose)} images directly in the folder" if loose else "no sub-folders"),
            hint="move each class's images into a folder named after the class",
        )
    return subs


def _open(f: Path, where: str, Image: Any) -> Any:
    """Open an image lazily (header only): a regular file, whose header size PIL's decompression-bomb
    check and the data memory limit accept, before any pixel is decoded."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(open_regular(f))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise DataError(f"{where}: the image is too large to decode safely ({e})",
                            hint="a small file that decodes to a huge image is a 'decompression bomb'; "
                                 "resize the image or remove it") from None
    check_memory(im.width * im.height * 4, where, f"decoding this {im.width}×{im.height} image")
    return im


def load_images(files: list[Path], base: Path | None, size: tuple[int, int] | None, channels: int | None,
                where: str) -> tuple[np.ndarray, tuple[int, int], int]:
    """Read ``files`` into (N, C, H, W) float32 in [0, 1]; returns the array, (H, W) and C. The memory the
    result needs is checked before the images are decoded (from ``size``, else from the first header)."""
    Image, Unidentified = _pil()
    fixed = size is not None
    imgs = []
    for f in files:
        try:
            with _open(f, display(f, base), Image) as im:
                if channels is None:
                    channels = 1 if im.mode in ("1", "L", "I", "I;16", "F") else 4 if im.mode in ("RGBA", "LA") else 3
                if channels not in MODES:
                    raise DataError(f"{where}: images with {channels} channels are not supported",
                                    hint="use model.input_shape [1, H, W] (grayscale), [3, H, W] (RGB) or [4, H, W] (RGBA)")
                if not imgs:
                    h, w = size or (im.height, im.width)
                    check_memory(len(files) * channels * h * w * 5, where,
                                 f"{len(files)} images of {channels}×{h}×{w} (as float32, after decoding)",
                                 "set a smaller data.image_size (and model.input_shape)")
                im.load()
                im = im.convert(MODES[channels])
                if size is None:
                    size = (im.height, im.width)
                if (im.height, im.width) != size and not fixed:
                    raise DataError(
                        f"{display(f, base)}: is {im.height}×{im.width} but {display(files[0], base)} is {size[0]}×{size[1]}",
                        hint="set data.image_size: [height, width] to resize every image to one size",
                    )
                if (im.height, im.width) != size:
                    im = im.resize((size[1], size[0]), Image.BILINEAR)
                imgs.append(np.asarray(im, dtype=np.uint8))
        except (Unidentified, OSError, ValueError, EOFError, SyntaxError) as e:  # PIL's decoders raise all of these
            raise DataError(f"{display(f, base)}: cannot read the image ({e})", hint="remove or replace this file") from e
    assert size is not None and channels is not None
    arr = np.stack(imgs).astype(np.float32) / 255.0  # (N, H, W) or (N, H, W, C)
    arr = arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)  # (N, C, H, W)
    return np.ascontiguousarray(arr), size, channels


def read_image_folder(root: Path, where: str, base: Path | None, size: tuple[int, int] | None,
                      channels: int | None, limit: int | None = None) -> RawData:
    """A class-per-folder tree → x (N, C, H, W) float32 in [0, 1], y class names (``limit``: at most
    that many images per class)."""
    files: list[Path] = []
    labels: list[str] = []
    for sub in class_folders(root, where):
        imgs = list_images(sub)
        if not imgs:
            raise DataError(f"{where}: class folder '{sub.name}' holds no images ({', '.join(sorted(IMAGE_EXTS))})",
                            hint="add images to it or remove the folder")
        imgs = imgs[:limit] if limit is not None else imgs
        files += imgs
        labels += [sub.name] * len(imgs)
    x, size, channels = load_images(files, base, size, channels, where)
    raw = RawData(x={"input": x}, y=np.array(labels), where=where, default_task="classification",
                  task_reason="an image folder (one sub-folder per class)")
    raw.meta.update(image_size=list(size), channels=channels, files=[display(f, base) for f in files])
    return raw
