"""CIFAR-10 from its own python batches, augmentation on tensors, synthetic images.

The data directory is ``--data DIR`` or the environment variable ``CIFAR10_DIR``;
it may be the ``cifar-10-batches-py`` folder itself or a parent holding it.
Batches are pickles (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) of a
dict with ``b"data"`` (uint8 [N, 3072]) and ``b"labels"`` (N ints). They are read
with a restricted unpickler that only allows the numpy globals a real batch needs,
so a batch file cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

__all__ = [
    "MEAN",
    "STD",
    "TRAIN_FILES",
    "TEST_FILE",
    "find_cifar_dir",
    "read_batch",
    "write_batch",
    "load_cifar10",
    "normalize",
    "augment",
    "batches",
    "synthetic_uint8",
    "synthetic_images",
    "write_synthetic_cifar",
]

MEAN = (0.491, 0.482, 0.447)
STD = (0.247, 0.243, 0.262)
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
SUBDIR = "cifar-10-batches-py"
ENV_VAR = "CIFAR10_DIR"


# --------------------------------------------------------------------------- reading
def _reconstruct(*args):
    from numpy._core.multiarray import _reconstruct as rec

    return rec(*args)


def _frombuffer(*args):
    from numpy._core.numeric import _frombuffer as fb

    return fb(*args)


# (module, name) -> object. Old pickles (the real CIFAR-10 files, written by
# Python 2) name numpy.core; numpy 2 writes numpy._core.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in a CIFAR-10 batch")


def find_cifar_dir(data: str | os.PathLike | None = None) -> Path:
    """The folder holding the batch files, from ``data`` or ``$CIFAR10_DIR``."""
    if data is None or str(data) == "":
        data = os.environ.get(ENV_VAR)
        if not data:
            raise DataError(f"no CIFAR-10 directory: pass --data DIR or set {ENV_VAR}")
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"{root}: CIFAR-10 directory does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    for cand in (root, root / SUBDIR):
        if (cand / TEST_FILE).exists() or (cand / TRAIN_FILES[0]).exists():
            return cand
    raise DataError(f"{root}: no CIFAR-10 batches here (expected {TEST_FILE}, data_batch_1..5 or {SUBDIR}/)")


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


def write_batch(path: str | os.PathLike, images: np.ndarray, labels) -> None:
    """Write a batch in CIFAR-10's pickle layout (dict of bytes keys, uint8 [N, 3072])."""
    images = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(labels), 3072)
    payload = {
        b"batch_label": b"synthetic batch",
        b"labels": [int(v) for v in labels],
        b"data": images,
        b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(labels))],
    }
    Path(path).write_bytes(pickle.dumps(payload, protocol=3))


def load_cifar10(data=None, split: str = "train", limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split as (uint8 images [N, 3, 32, 32], int64 labels [N]) tensors.

    ``limit`` keeps only the first ``limit`` images (reading only as many files
    as needed); it must be at least 1.
    """
    if limit is not None and limit < 1:
        raise DataError(f"the {split} split: limit must be >= 1 image, got {limit}")
    folder = find_cifar_dir(data)
    if split == "train":
        files = TRAIN_FILES
    elif split == "test":
        files = (TEST_FILE,)
    else:
        raise DataError(f"unknown split {split!r} (train or test)")
    xs, ys, count = [], [], 0
    for name in files:
        if limit is not None and count >= limit:
            break
        x, y = read_batch(folder / name)
        xs.append(x)
        ys.append(y)
        count += len(y)
    images = torch.from_numpy(np.concatenate(xs))
    labels = torch.from_numpy(np.concatenate(ys))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if len(labels) == 0:
        raise DataError(f"{folder}: the {split} split holds no images")
    return images.contiguous(), labels.contiguous()


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
