"""CIFAR-10 as people have it, augmentation on tensors, synthetic images.

``--data`` (or the environment variable ``CIFAR10_DIR``) may be any of:

* the python batches folder ``cifar-10-batches-py`` (``data_batch_1`` .. ``data_batch_5``,
  ``test_batch``), or torchvision's root holding it;
* the ``cifar-10-python.tar.gz`` archive, read in place (nothing is unpacked);
* an image-folder tree ``train/<class>/*.png|jpg`` and ``test/<class>/...`` (``<class>`` one
  of CLASSES, label = its position), or a ``.tar.gz`` of one. Images are decoded with
  Pillow and must be 32x32; a split's order is class by class, files sorted by name
  (torchvision's ImageFolder order); ``--limit N`` takes the classes' files in turn (the
  first file of each class, then the second, ...), so N images cover every class.

Batches are pickles of a dict with ``b"data"`` (uint8 [N, 3072]) and ``b"labels"`` (N
ints). They are read with a restricted unpickler that allows only the numpy globals a
real batch needs and ``_codecs.encode`` (which Python-2-protocol pickles written by
Python 3 use for bytes), so a batch file cannot run code.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import re
import sys
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .errors import DataError

__all__ = [
    "MEAN",
    "STD",
    "CLASSES",
    "TRAIN_FILES",
    "TEST_FILE",
    "find_cifar_dir",
    "open_cifar10",
    "read_batch",
    "write_batch",
    "load_cifar10",
    "load_test_image",
    "normalize",
    "augment",
    "batches",
    "synthetic_uint8",
    "synthetic_images",
    "write_synthetic_cifar",
    "write_image_folders",
]

MEAN = (0.491, 0.482, 0.447)
STD = (0.247, 0.243, 0.262)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
SUBDIR = "cifar-10-batches-py"
ENV_VAR = "CIFAR10_DIR"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BATCHES, IMAGE_FOLDERS = "python batches", "image folders"


# --------------------------------------------------------------------------- reading
def _reconstruct(*args):
    from numpy._core.multiarray import _reconstruct as rec

    return rec(*args)


def _frombuffer(*args):
    from numpy._core.numeric import _frombuffer as fb

    return fb(*args)


# (module, name) -> object. Old pickles (the real CIFAR-10 files, written by
# Python 2) name numpy.core; numpy 2 writes numpy._core. Protocol-2 pickles written
# by Python 3 encode bytes with _codecs.encode.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in a CIFAR-10 batch")


class _Files:
    """The files of a folder or of a .tar(.gz) archive, by POSIX relative path."""

    def __init__(self, root: Path):
        self.root = root
        self._tar = None
        if root.is_file():
            try:
                self._tar = tarfile.open(root)  # noqa: SIM115 - kept open while the dataset is read
                self._members = {str(PurePosixPath(m.name)): m for m in self._tar.getmembers() if m.isfile()}
            except (tarfile.TarError, OSError, EOFError) as e:
                raise DataError(f"{root}: not a readable .tar/.tar.gz archive ({e})") from None

    def where(self, rel: str) -> str:
        return f"{self.root}:{rel}" if self._tar is not None else str(self.root / rel)

    def exists(self, rel: str) -> bool:
        return rel in self._members if self._tar is not None else (self.root / rel).is_file()

    def read(self, rel: str) -> bytes:
        try:
            if self._tar is not None:
                return self._tar.extractfile(self._members[rel]).read()
            return (self.root / rel).read_bytes()
        except (OSError, tarfile.TarError, EOFError, KeyError) as e:
            raise DataError(f"{self.where(rel)}: cannot read: {getattr(e, 'strerror', None) or e}") from None

    def listing(self, prefix: str) -> list[str]:
        """Every file under ``prefix`` (a folder path ending in / or empty), relative to the root."""
        if self._tar is not None:
            return sorted(n for n in self._members if n.startswith(prefix))
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(str(PurePosixPath(p.relative_to(self.root))) for p in base.rglob("*") if p.is_file())

    def has_dir(self, prefix: str) -> bool:
        """Whether a folder ``prefix`` (ending in /) holds anything."""
        if self._tar is not None:
            return any(n.startswith(prefix) for n in self._members)
        return (self.root / prefix).is_dir()

    def top_dirs(self) -> list[str]:
        if self._tar is not None:
            return sorted({n.split("/", 1)[0] + "/" for n in self._members if "/" in n})
        return sorted(p.name + "/" for p in self.root.iterdir() if p.is_dir())


class CifarSource:
    """One CIFAR-10 copy: ``split(name, limit)`` -> (uint8 [N, 3, 32, 32], int64 [N])."""

    def __init__(self, files: _Files, prefix: str, kind: str):
        self.files, self.prefix, self.kind = files, prefix, kind
        self._listed: dict[str, list[tuple[str, int]]] = {}

    def describe(self) -> str:
        return f"{self.files.where(self.prefix)} ({self.kind})"

    def split(self, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in ("train", "test"):
            raise DataError(f"unknown split {split!r} (train or test)")
        if limit is not None and limit < 1:
            raise DataError(f"the {split} split: limit must be >= 1 image, got {limit}")
        if self.kind == BATCHES:
            x, y = self._batches(split, limit)
        else:
            entries = _spread(self._images(split), limit)
            x = np.stack([self._decode(rel) for rel, _ in tqdm(
                entries, desc=f"decode {split}", unit="img", leave=False, disable=len(entries) < 2000)]) \
                if entries else np.zeros((0, 3, 32, 32), np.uint8)
            y = np.array([label for _, label in entries], dtype=np.int64)
        if len(y) == 0:
            raise DataError(f"{self.describe()}: the {split} split holds no images")
        return torch.from_numpy(x).contiguous(), torch.from_numpy(y).contiguous()

    def image(self, split: str, index: int) -> tuple[torch.Tensor, int, str]:
        """One image: (uint8 [3, 32, 32], label, where it came from)."""
        if self.kind == BATCHES:
            x, y = self.split(split, index + 1)
            if index >= len(y):
                raise DataError(f"image index {index} out of range: the {split} set has {len(y)} images")
            return x[index], int(y[index]), f"{self.files.where(self.prefix)} {split} image {index}"
        entries = self._images(split)
        if index >= len(entries):
            raise DataError(f"image index {index} out of range: the {split} set has {len(entries)} images")
        rel, label = entries[index]
        return torch.from_numpy(self._decode(rel)), label, self.files.where(rel)

    def _batches(self, split, limit):
        names = TRAIN_FILES if split == "train" else (TEST_FILE,)
        xs, ys, count = [], [], 0
        for name in names:
            if limit is not None and count >= limit:
                break
            rel = self.prefix + name
            if not self.files.exists(rel):
                raise DataError(f"{self.files.where(rel)}: missing CIFAR-10 batch file")
            x, y = _parse_batch(self.files.read(rel), self.files.where(rel))
            xs.append(x)
            ys.append(y)
            count += len(y)
        return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]

    def _images(self, split) -> list[tuple[str, int]]:
        """(file, label) of the split's images, class by class. Other files (a README, a
        .DS_Store, a file outside a class folder) are skipped and, like classes without an
        image, named in one note line on stderr, once per split."""
        if split in self._listed:
            return self._listed[split]
        base = f"{self.prefix}{split}/"
        entries, skipped = [], []
        for rel in self.files.listing(base):
            parts = rel[len(base):].split("/")
            if len(parts) != 2 or not parts[1].lower().endswith(IMAGE_SUFFIXES):
                skipped.append(rel[len(base):])
                continue
            if parts[0] not in CLASSES:
                raise DataError(f"{self.files.where(base + parts[0])}: unknown class folder "
                                f"(expected one of {', '.join(CLASSES)})")
            entries.append((rel, CLASSES.index(parts[0])))
        entries.sort(key=lambda e: (e[1], e[0]))
        empty = [c for k, c in enumerate(CLASSES) if all(label != k for _, label in entries)]
        if entries and (skipped or empty):      # no image at all: split() refuses the split
            many = len(skipped) > 1
            notes = [f"skipped {len(skipped)} file{'s' * many} that {'are' if many else 'is'} not a "
                     f"{'/'.join(IMAGE_SUFFIXES)} image in a class folder "
                     f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})"] if skipped else []
            notes += [f"no images of {', '.join(empty)}"] if empty else []
            print(f"note: {self.files.where(base)}: {'; '.join(notes)}", file=sys.stderr)
        self._listed[split] = entries
        return entries

    def _decode(self, rel: str) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        where, raw = self.files.where(rel), self.files.read(rel)
        try:
            with Image.open(io.BytesIO(raw)) as img:
                if img.size != (32, 32):
                    raise DataError(f"{where}: image is {img.size[0]}x{img.size[1]}, CIFAR-10 images are 32x32")
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except UnidentifiedImageError:     # its message is the repr of our BytesIO
            raise DataError(f"{where}: not a readable image "
                            f"({'empty file' if not raw else 'not in a format Pillow reads'})") from None
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{where}: not a readable image ({e})") from None
        return rgb.transpose(2, 0, 1).copy()


def _spread(entries: list[tuple[str, int]], limit: int | None) -> list[tuple[str, int]]:
    """``limit`` of a class-by-class image list, taking each class's files in turn (the first
    of every class, then the second, ...) and kept class by class: the first N files would
    all be airplanes. The python batches need no such pick: their images are shuffled."""
    if limit is None or limit >= len(entries):
        return entries
    ranks, seen = [], [0] * len(CLASSES)
    for _, label in entries:
        ranks.append(seen[label])
        seen[label] += 1
    picked = sorted(range(len(entries)), key=lambda k: (ranks[k], entries[k][1]))[:limit]
    return [entries[k] for k in sorted(picked)]


def open_cifar10(data: str | os.PathLike | None = None) -> CifarSource:
    """Find CIFAR-10 in ``data`` (or ``$CIFAR10_DIR``): batches, archive or image folders."""
    if data is None or str(data) == "":
        data = os.environ.get(ENV_VAR)
        if not data:
            raise DataError(f"no CIFAR-10 directory: pass --data DIR or set {ENV_VAR}")
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"{root}: CIFAR-10 directory does not exist")
    if not root.is_dir() and not re.search(r"\.(tar|tar\.gz|tgz)$", root.name):
        raise DataError(f"{root}: not a directory or a .tar.gz archive")
    files = _Files(root)
    tops = files.top_dirs()
    for prefix in ("", SUBDIR + "/", *tops):
        if files.exists(prefix + TEST_FILE) or files.exists(prefix + TRAIN_FILES[0]):
            return CifarSource(files, prefix, BATCHES)
    for prefix in ("", *tops):
        if any(files.has_dir(f"{prefix}{split}/") for split in ("train", "test")):
            return CifarSource(files, prefix, IMAGE_FOLDERS)
    raise DataError(f"{root}: no CIFAR-10 here (expected {TEST_FILE} and data_batch_1..5, {SUBDIR}/, "
                    f"or train/<class>/ and test/<class>/ image folders)")


def find_cifar_dir(data: str | os.PathLike | None = None) -> Path:
    """The folder holding the batch files, from ``data`` or ``$CIFAR10_DIR``."""
    source = open_cifar10(data)
    if source.kind != BATCHES or not source.files.root.is_dir():
        raise DataError(f"{source.describe()}: not a folder of python batches")
    return source.files.root / source.prefix


def _get(d: dict, key: str):
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file: (uint8 images [N, 3, 32, 32], int64 labels [N])."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing CIFAR-10 batch file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    return _parse_batch(raw, path)


def _parse_batch(raw: bytes, path) -> tuple[np.ndarray, np.ndarray]:
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{path}: refused or corrupt batch: {e}") from None
    except Exception as e:  # truncated / garbage pickles raise many types
        raise DataError(f"{path}: corrupt batch file ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict, got {type(obj).__name__})")
    data = _get(obj, "data")
    labels = _get(obj, "labels")
    if data is None or labels is None:
        raise DataError(f"{path}: not a CIFAR-10 batch (no 'data' / 'labels' entries)")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise DataError(f"{path}: 'data' must be uint8 [N, 3072], got {dtype} {shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'labels' must be a list of integers") from None
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but labels of shape {tuple(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must be 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def write_batch(path: str | os.PathLike, images: np.ndarray, labels, protocol: int = 3) -> None:
    """Write a batch in CIFAR-10's pickle layout (dict of bytes keys, uint8 [N, 3072])."""
    images = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(labels), 3072)
    payload = {
        b"batch_label": b"synthetic batch",
        b"labels": [int(v) for v in labels],
        b"data": images,
        b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(labels))],
    }
    Path(path).write_bytes(pickle.dumps(payload, protocol=protocol))


def load_cifar10(data=None, split: str = "train", limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split as (uint8 images [N, 3, 32, 32], int64 labels [N]) tensors.

    ``limit`` keeps only ``limit`` images (reading only as many batch files or image files
    as needed): the first ones of the batches, each class's files in turn of image
    folders; it must be at least 1. A limit above the split's size takes the whole split,
    with a note on stderr.
    """
    if limit is not None and limit < 1:
        raise DataError(f"the {split} split: limit must be >= 1 image, got {limit}")
    x, y = open_cifar10(data).split(split, limit)
    if limit is not None and len(y) < limit:
        print(f"note: a limit of {limit:,} images: the {split} split has {len(y):,}, all used", file=sys.stderr)
    return x, y


def load_test_image(data, index: int) -> tuple[torch.Tensor, int, str]:
    """Test image ``index``: (uint8 [3, 32, 32], label, the file or batch it came from)."""
    if index < 0:
        raise DataError(f"image index must be >= 0, got {index}")
    return open_cifar10(data).image("test", index)


# --------------------------------------------------------------------------- transforms
def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0..255 float) [N, 3, H, W] -> float32 normalized with MEAN / STD."""
    x = images.float().div_(255.0)
    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4) -> torch.Tensor:
    """Random crop (size kept, zero padding ``padding``) + random horizontal flip.

    Works on a whole batch [N, C, H, W] at once (any dtype); apply it before
    ``normalize`` so the padding is black, as torchvision's RandomCrop does. The
    random numbers are drawn on the CPU from ``generator``.
    """
    n, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    dev = images.device
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(dev)  # [N, H]
    cols = dx.view(n, 1) + torch.arange(w).view(1, w)  # [N, W]
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols).to(dev)
    idx_n = torch.arange(n, device=dev).view(n, 1, 1)
    out = padded[idx_n, :, rows.view(n, h, 1), cols.view(n, 1, w)]  # [N, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    augment_data: bool = False,
    generator: torch.Generator | None = None,
    device="cpu",
):
    """Yield (normalized float images, labels) batches on ``device``.

    ``images`` are uint8 [N, 3, 32, 32]. Shuffling and augmentation draw from
    ``generator`` (a CPU torch.Generator) so a seeded run is reproducible.
    """
    n = len(labels)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = images[idx].to(device, non_blocking=True)
        y = labels[idx].to(device, non_blocking=True)
        if augment_data:
            x = augment(x, generator)
        yield normalize(x), y


def num_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


# --------------------------------------------------------------------------- synthetic
_SYN_CHUNK = 256


def _synthetic_chunk(seed: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + chunk)
    n = _SYN_CHUNK
    labels = torch.randint(0, 10, (n,), generator=g)
    img = torch.zeros(n, 3, 32, 32)
    for size, weight in ((2, 1.0), (4, 0.7), (8, 0.45), (16, 0.25)):
        noise = torch.randn(n, 3, size, size, generator=g)
        img += weight * F.interpolate(noise, size=(32, 32), mode="bilinear", align_corners=False)
    tints = torch.randn(10, 3, generator=torch.Generator().manual_seed(12345)) * 0.8
    img += tints[labels].view(n, 3, 1, 1)
    img = 128.0 + 48.0 * img
    return img.round().clamp(0, 255).to(torch.uint8), labels


def synthetic_uint8(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic image-like uint8 images [n, 3, 32, 32] and int64 labels [n].

    Each image is a sum of smooth random fields (bilinear upsampled 2x2, 4x4,
    8x8 and 16x16 noise, lower frequencies stronger) plus a per-class colour
    tint, so neighbouring pixels are correlated like in a photo and the labels
    are learnable. Image ``i`` depends only on ``(seed, i)``, not on ``n``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    xs, ys = [], []
    for chunk in range((n + _SYN_CHUNK - 1) // _SYN_CHUNK):
        x, y = _synthetic_chunk(seed, chunk)
        xs.append(x)
        ys.append(y)
    if not xs:
        return torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
    return torch.cat(xs)[:n].contiguous(), torch.cat(ys)[:n].contiguous()


def synthetic_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic normalized float images [n, 3, 32, 32] and int64 labels [n]."""
    x, y = synthetic_uint8(n, seed)
    return normalize(x), y


def write_synthetic_cifar(folder: str | os.PathLike, n_train: int = 100, n_test: int = 20, seed: int = 0,
                          train_files: int = 5) -> Path:
    """Write a small dataset in CIFAR-10's format (``cifar-10-batches-py``-like folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x, y = synthetic_uint8(n_train, seed)
    parts = np.array_split(np.arange(n_train), train_files)
    for i, name in enumerate(TRAIN_FILES[:train_files]):
        idx = parts[i]
        write_batch(folder / name, x[idx].numpy(), y[idx].tolist())
    xt, yt = synthetic_uint8(n_test, seed + 1)
    write_batch(folder / TEST_FILE, xt.numpy(), yt.tolist())
    return folder


def write_image_folders(root: str | os.PathLike, images, labels, split: str = "test", suffix: str = ".png") -> Path:
    """Write uint8 [N, 3, 32, 32] images as ``root/split/<class>/NNNN<suffix>`` (numbered per class)."""
    from PIL import Image

    root = Path(root)
    counts = [0] * len(CLASSES)
    for img, label in zip(np.asarray(images, dtype=np.uint8), np.asarray(labels)):
        folder = root / split / CLASSES[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{counts[int(label)]:04d}{suffix}")
        counts[int(label)] += 1
    return root
