"""Eye crops on disk -> a cached uint8 tensor with labels and splits.

A folder is searched recursively, linked (symlinked) folders included. The class of an image
is the nearest folder whose name says open or closed (`Open_Eyes`, `closedLeftEyes`,
`closed_eye`, `awake`, `sleepy`, ...); its split is a `train` / `val` / `valid` / `test`
folder above it when there is one, otherwise a seeded, stratified split is drawn. Images are
decoded once, in parallel, into a safetensors cache keyed by the folder's listing and the
image size, so later runs start in seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from vaegan.config import ModelConfig

logger = logging.getLogger(__name__)

KAGGLE_DATASET = "sehriyarmemmedli/open-closed-eyes-dataset"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
LABEL_NAMES = ("closed", "open")  # label 0 = closed, 1 = open
SPLIT_NAMES = ("train", "val", "test")
MAX_IMAGE_PIXELS = 40_000_000  # larger files are refused as decompression bombs
CACHE_VERSION = 1

_CLOSED_WORDS = ("closed", "close", "sleepy", "sleeping", "drowsy", "shut")
_OPEN_WORDS = ("open", "opened", "awake", "alert")
_SPLIT_WORDS = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}


class DataError(Exception):
    """A dataset problem the user must fix (empty folder, no classes, download failed)."""


def class_of(folder_name: str) -> int | None:
    """Label (0 closed, 1 open) that a folder name stands for, or None."""
    words = re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", folder_name).lower())
    if any(word in _CLOSED_WORDS for word in words):
        return 0
    if any(word in _OPEN_WORDS for word in words):
        return 1
    return None


def split_of(folder_name: str) -> str | None:
    """Split ('train', 'val', 'test') that a folder name stands for, or None."""
    return _SPLIT_WORDS.get(folder_name.lower())


@dataclass
class EyeData:
    """Decoded images (N, C, H, W) uint8, labels (N,) 0 closed / 1 open, splits (N,) 0 train / 1 val / 2 test."""

    images: torch.Tensor
    labels: torch.Tensor
    splits: torch.Tensor
    paths: list[str]  # relative to the folder they were found in

    def subset(self, *splits: str) -> "EyeData":
        """The images of the given splits ('train', 'val', 'test'), in their order here."""
        keep = torch.isin(self.splits, torch.tensor([SPLIT_NAMES.index(split) for split in splits], dtype=self.splits.dtype))
        index = keep.nonzero().squeeze(1).tolist()
        return EyeData(self.images[keep], self.labels[keep], self.splits[keep], [self.paths[i] for i in index])

    def held_out(self) -> "EyeData":
        """The test split when it has images, else the validation split."""
        test = self.subset("test")
        return test if len(test) else self.subset("val")

    def __len__(self) -> int:
        return len(self.labels)


def discover(root: str | os.PathLike) -> list[tuple[str, int, str | None]]:
    """Find (relative path, label, split or None) for every labelled image under root, sorted."""
    root = Path(root)
    if not root.is_dir():
        problem = "a file, not a folder" if root.exists() else "no such folder"
        raise DataError(f"{root}: {problem} (expected a folder of eye crops in open / closed class folders)")
    found = []
    unlabelled = 0
    walked: set[str] = set()  # real paths: linked folders are followed, and a folder reached twice (a link back up) is read once
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in walked:
            dirnames.clear()
            continue
        walked.add(real)
        dirnames.sort()
        relative_dir = os.path.relpath(dirpath, root)
        parts = Path(relative_dir).parts if relative_dir != "." else ()
        label = next((c for c in map(class_of, reversed(parts)) if c is not None), None)
        split = next((s for s in map(split_of, parts) if s is not None), None)
        prefix = "" if relative_dir == "." else relative_dir + os.sep
        for name in sorted(filenames):  # plain string operations: this loop runs once per image (175k)
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS or name.startswith("."):
                continue
            if label is None:
                unlabelled += 1
                continue
            found.append((prefix + name, label, split))
    if not found:
        what = f"{unlabelled} images, but none in a folder named open / closed" if unlabelled else "no images"
        raise DataError(
            f"{root}: found {what}. Expected class folders such as open/ and closed/ "
            "(or Open_Eyes, closedLeftEyes, awake, sleepy), optionally inside train/ val/ test/."
        )
    classes = {label for _, label, _ in found}
    if len(classes) < 2:
        only = LABEL_NAMES[classes.pop()]
        raise DataError(f"{root}: found only '{only}' eyes ({len(found)} images); both open and closed are needed.")
    if unlabelled:
        logger.warning("%s: ignored %d images outside open / closed folders", root, unlabelled)
    return found


def assign_splits(
    items: list[tuple[str, int, str | None]], seed: int, val_fraction: float, test_fraction: float
) -> np.ndarray:
    """Split codes (0 train, 1 val, 2 test): from the folders where given, else seeded and stratified by label."""
    splits = np.array([SPLIT_NAMES.index(s) if s else -1 for _, _, s in items], dtype=np.int8)
    rng = np.random.default_rng(seed)
    for label in (0, 1):
        free = np.array([i for i, (_, lab, s) in enumerate(items) if s is None and lab == label], dtype=np.int64)
        rng.shuffle(free)
        n_val, n_test = int(len(free) * val_fraction), int(len(free) * test_fraction)
        splits[free[:n_val]] = 1
        splits[free[n_val : n_val + n_test]] = 2
        splits[free[n_val + n_test :]] = 0
    return splits


def decode_image(path: str | os.PathLike, image_size: int, channels: int) -> np.ndarray:
    """Read one image as uint8 (C, H, W): EXIF-rotated, grayscale or RGB, resized to a square."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL's own, looser limit: an error too
        with Image.open(path) as image:  # reads the header only: the size is known before any pixel is decoded
            if image.width * image.height > MAX_IMAGE_PIXELS:  # our limit, checked here: PIL's is process-wide
                raise Image.DecompressionBombError(
                    f"{path}: {image.width}x{image.height} pixels exceeds the limit of {MAX_IMAGE_PIXELS} (a decompression bomb?)"
                )
            image.draft("L" if channels == 1 else "RGB", (image_size, image_size))  # JPEG: decode at reduced scale
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                image = image.point(lambda v: v / 256).convert("L")  # 16-bit -> 8-bit
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image.convert("RGBA"))
            image = image.convert("L" if channels == 1 else "RGB")
            image = image.resize((image_size, image_size), Image.Resampling.BICUBIC, reducing_gap=2.0)
            array = np.array(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def load_image(path: str | os.PathLike, config: ModelConfig) -> torch.Tensor:
    """One image preprocessed exactly as in training: float tensor (C, H, W) in [-1, 1]."""
    return to_float(torch.from_numpy(decode_image(path, config.image_size, config.channels)))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def augment(x: torch.Tensor, max_shift: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of a float batch (B, C, H, W) in [-1, 1] shifted by up to max_shift whole pixels (edge pixels
    repeated), its contrast scaled by 0.8-1.25 about its mean and its brightness moved by up to 0.15; clamped to [-1, 1]."""
    batch, _, height, width = x.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(batch, 1, 1, 1).uniform_(low, high, generator=generator).to(x)

    shifts = torch.randint(-max_shift, max_shift + 1, (batch, 2), generator=generator).to(x)
    theta = torch.zeros(batch, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 2 * shifts[:, 0] / width  # normalised coordinates: whole-pixel steps, sampled exactly
    theta[:, 1, 2] = 2 * shifts[:, 1] / height
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = uniform(math.log(0.8), math.log(1.25)).exp()
    return ((x - mean) * contrast + mean + uniform(-0.15, 0.15)).clamp(-1.0, 1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def _decode_or_reason(job: tuple[str, int, int]) -> np.ndarray | str:
    path, image_size, channels = job
    try:
        return decode_image(path, image_size, channels)
    except Exception as error:  # noqa: BLE001 - any unreadable file is skipped and counted
        return type(error).__name__


def _cache_key(root: Path, items: list[tuple[str, int, str | None]], image_size: int, channels: int, split_spec: str) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}|{root.resolve()}|{image_size}|{channels}|{split_spec}".encode())
    prefix = str(root) + os.sep
    for relative, label, split in items:
        stat = os.stat(prefix + relative)
        digest.update(f"{relative}|{label}|{split}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def default_cache_dir() -> Path:
    """~/.cache/vaegan, or $VAEGAN_CACHE."""
    return Path(os.environ.get("VAEGAN_CACHE", Path.home() / ".cache" / "vaegan"))


def load_dataset(
    root: str | os.PathLike,
    image_size: int = 64,
    channels: int = 1,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int = 0,
) -> EyeData:
    """Discover, split and decode a folder of eye crops, through the cache."""
    root = Path(root)
    items = discover(root)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = _cache_key(root, items, image_size, channels, f"{seed}|{val_fraction}|{test_fraction}")
    cache_file = cache_dir / f"{root.resolve().name}-{image_size}px-{channels}ch-{key}.safetensors"
    if cache_file.exists():
        try:
            tensors = load_file(cache_file)
            with open(cache_file.with_suffix(".json")) as handle:
                paths = json.load(handle)["paths"]
            if len(paths) != len(tensors["labels"]):
                raise ValueError("paths and images disagree")
            logger.info("loaded %d images from cache %s", len(paths), cache_file)
            return _as_eye_data(tensors, paths)
        except Exception as error:  # noqa: BLE001 - a damaged cache is rebuilt, never used
            logger.warning("cache %s is unreadable (%s); rebuilding it", cache_file, error)
    splits = assign_splits(items, seed, val_fraction, test_fraction)
    tensors, paths = _build(root, items, splits, image_size, channels, num_workers)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # temp files named per writer, renamed into place: the cache appears whole or not at all, also when
    # two processes build it at once (two runs on one folder); the path list goes first, the images last
    listing, temporary = _unique_temporary(cache_file), _unique_temporary(cache_file)
    try:
        listing.write_text(json.dumps({"root": str(root.resolve()), "paths": paths}))
        os.replace(listing, cache_file.with_suffix(".json"))
        save_file(tensors, str(temporary))
        os.replace(temporary, cache_file)
    finally:  # a failed write (a full disk, say) leaves no temp files behind
        listing.unlink(missing_ok=True)
        temporary.unlink(missing_ok=True)
    logger.info("cached %d images in %s", len(paths), cache_file)
    return _as_eye_data(tensors, paths)


def _unique_temporary(path: Path) -> Path:
    """An empty temp file beside path, unique to this writer."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    os.close(descriptor)
    return Path(name)


def _build(root, items, splits, image_size, channels, num_workers):
    images = np.zeros((len(items), channels, image_size, image_size), dtype=np.uint8)  # preallocated: bounded memory
    keep = np.zeros(len(items), dtype=bool)
    reasons: Counter[str] = Counter()
    jobs = [(str(root / relative), image_size, channels) for relative, _, _ in items]
    workers = num_workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), desc="decoding images", unit="img", leave=False, mininterval=1.0)
    if workers > 1 and len(jobs) >= 2000:
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with context.Pool(workers) as pool:
            results = pool.imap(_decode_or_reason, jobs, chunksize=256)
            _collect(results, images, keep, reasons, bar)
    else:
        _collect(map(_decode_or_reason, jobs), images, keep, reasons, bar)
    bar.close()
    if reasons:
        detail = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
        logger.warning("skipped %d of %d images that could not be read (%s)", sum(reasons.values()), len(jobs), detail)
    if not keep.any():
        raise DataError(f"{root}: none of the {len(jobs)} images could be read")
    labels = np.array([label for _, label, _ in items], dtype=np.int64)
    tensors = {"images": images[keep], "labels": labels[keep], "splits": splits[keep]}
    paths = [relative for (relative, _, _), kept in zip(items, keep) if kept]
    return tensors, paths


def _collect(results, images, keep, reasons, bar) -> None:
    for i, result in enumerate(results):
        if isinstance(result, str):
            reasons[result] += 1
        else:
            images[i] = result
            keep[i] = True
        bar.update()


def _as_eye_data(tensors: dict[str, np.ndarray], paths: list[str]) -> EyeData:
    return EyeData(
        images=torch.from_numpy(tensors["images"]),
        labels=torch.from_numpy(tensors["labels"]),
        splits=torch.from_numpy(tensors["splits"]),
        paths=paths,
    )


def download_kaggle(dataset: str = KAGGLE_DATASET) -> Path:
    """Download (once; kagglehub caches it) the Kaggle open / closed eyes dataset and return its folder."""
    import kagglehub  # only needed when no --data-dir is given

    try:
        return Path(kagglehub.dataset_download(dataset))
    except Exception as error:  # noqa: BLE001 - every failure gets the same advice
        raise DataError(
            f"could not download the Kaggle dataset {dataset} ({type(error).__name__}: {error}). "
            "Check your internet connection and Kaggle credentials (KAGGLE_USERNAME / KAGGLE_KEY, "
            "or ~/.kaggle/kaggle.json), or download the archive by hand from "
            f"https://www.kaggle.com/datasets/{dataset}, unzip it and pass --data-dir DIR."
        ) from error
