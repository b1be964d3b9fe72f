import os
import pickle

import numpy as np
import pytest
import torch

from model import data as cifar
from model.errors import DataError


def _batch(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def _write_dataset(folder, n=20):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(cifar.TRAIN_FILES):
        x, y = _batch(n, i)
        cifar.write_batch(folder / name, x, y)
    x, y = _batch(n, 99)
    cifar.write_batch(folder / cifar.TEST_FILE, x, y)
    return folder


def test_read_own_format_roundtrip(tmp_path):
    x, y = _batch(20, 0)
    # exactly CIFAR-10's layout: dict with bytes keys, written by pickle
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"batch_label": b"x", b"labels": y, b"data": x, b"filenames": [b"a"] * 20}, f, protocol=3)
    images, labels = cifar.read_batch(tmp_path / "data_batch_1")
    assert images.shape == (20, 3, 32, 32) and images.dtype == np.uint8
    assert np.array_equal(images.reshape(20, -1), x)
    assert labels.tolist() == y


def test_python2_style_global_names(tmp_path):
    # The real files (Python 2 cPickle) name numpy.core.multiarray._reconstruct.
    x, y = _batch(4, 1)
    raw_nocodecs = pickle.dumps({b"data": x, b"labels": y}, protocol=3).replace(
        b"numpy._core.multiarray\n_reconstruct", b"numpy.core.multiarray\n_reconstruct"
    )
    (tmp_path / "b3").write_bytes(raw_nocodecs)
    images, labels = cifar.read_batch(tmp_path / "b3")
    assert np.array_equal(images.reshape(4, -1), x) and labels.tolist() == y
    # protocol 5 (numpy's _frombuffer) is fine too
    (tmp_path / "b5").write_bytes(pickle.dumps({b"data": x, b"labels": y}, protocol=5))
    assert np.array_equal(cifar.read_batch(tmp_path / "b5")[0].reshape(4, -1), x)


class _Boom:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_batch_with_code_is_refused(tmp_path):
    marker = str(tmp_path / "pwned")
    x, y = _batch(2, 0)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": x, b"labels": y, b"x": _Boom(marker)}, f)
    with pytest.raises(DataError) as e:
        cifar.read_batch(tmp_path / "test_batch")
    assert "not allowed" in str(e.value) and "test_batch" in str(e.value)
    assert not os.path.exists(marker)


@pytest.mark.parametrize(
    "payload, needle",
    [
        (b"", "corrupt"),
        (b"garbage that is not a pickle", "corrupt"),
        (pickle.dumps([1, 2, 3]), "expected a dict"),
        (pickle.dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}), "uint8 [N, 3072]"),
        (pickle.dumps({b"data": np.zeros((3, 3072), np.float32), b"labels": [0, 1, 2]}), "uint8 [N, 3072]"),
        (pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}), "labels"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}), "0..9"),
        (pickle.dumps({b"labels": [0]}), "no 'data'"),
    ],
)
def test_corrupt_batches(tmp_path, payload, needle):
    p = tmp_path / "test_batch"
    p.write_bytes(payload)
    with pytest.raises(DataError) as e:
        cifar.read_batch(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and needle in msg


def test_truncated_batch(tmp_path):
    x, y = _batch(20, 0)
    raw = pickle.dumps({b"data": x, b"labels": y}, protocol=3)
    (tmp_path / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="test_batch"):
        cifar.read_batch(tmp_path / "test_batch")


def test_load_dir_parent_and_env(tmp_path, monkeypatch):
    folder = _write_dataset(tmp_path / "cifar-10-batches-py")
    x1, y1 = cifar.load_cifar10(folder, "train")
    assert x1.shape == (100, 3, 32, 32) and x1.dtype == torch.uint8 and y1.dtype == torch.int64
    x2, _ = cifar.load_cifar10(tmp_path, "train")  # parent holding cifar-10-batches-py/
    assert torch.equal(x1, x2)
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    xt, yt = cifar.load_cifar10(None, "test")
    assert xt.shape == (20, 3, 32, 32) and len(yt) == 20
    xl, yl = cifar.load_cifar10(folder, "train", limit=25)
    assert len(yl) == 25 and torch.equal(xl, x1[:25])


def test_missing_dir_and_files(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    with pytest.raises(DataError, match="CIFAR10_DIR"):
        cifar.load_cifar10(None)
    with pytest.raises(DataError, match="does not exist"):
        cifar.load_cifar10(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no CIFAR-10 here"):
        cifar.load_cifar10(tmp_path / "empty")
    folder = _write_dataset(tmp_path / "d")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as e:
        cifar.load_cifar10(folder, "train")
    assert "data_batch_3" in str(e.value) and "missing" in str(e.value)
    assert len(cifar.load_cifar10(folder, "train", limit=40)[1]) == 40  # only 2 files needed


def test_limit_below_one_is_refused(tmp_path):
    folder = _write_dataset(tmp_path / "d")
    for split, limit in (("train", 0), ("test", 0), ("test", -5)):
        with pytest.raises(DataError, match=rf"^the {split} split: limit must be >= 1 image, got {limit}$"):
            cifar.load_cifar10(folder, split, limit=limit)
    assert len(cifar.load_cifar10(folder, "test", limit=1)[1]) == 1


def test_normalize_and_augment():
    x = torch.full((4, 3, 32, 32), 128, dtype=torch.uint8)
    n = cifar.normalize(x)
    assert n.dtype == torch.float32
    assert n[0, 0, 0, 0].item() == pytest.approx((128 / 255 - 0.491) / 0.247, abs=1e-5)
    img = torch.arange(2 * 3 * 32 * 32, dtype=torch.int32).view(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    a = cifar.augment(img, g)
    assert a.shape == img.shape and a.dtype == img.dtype
    a2 = cifar.augment(img, torch.Generator().manual_seed(0))
    assert torch.equal(a, a2)
    # every output is a (maybe flipped) 32x32 window of the zero-padded image
    padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
    for i in range(2):
        found = False
        for dy in range(9):
            for dx in range(9):
                win = padded[i, :, dy : dy + 32, dx : dx + 32]
                if torch.equal(a[i], win) or torch.equal(a[i], win.flip(2)):
                    found = True
        assert found


def test_batches_iterator():
    x = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(10)
    got = list(cifar.batches(x, y, 4))
    assert [len(b[1]) for b in got] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in got]), y)
    g1 = torch.Generator().manual_seed(1)
    g2 = torch.Generator().manual_seed(1)
    s1 = torch.cat([b[1] for b in cifar.batches(x, y, 3, shuffle=True, augment_data=True, generator=g1)])
    s2 = torch.cat([b[1] for b in cifar.batches(x, y, 3, shuffle=True, augment_data=True, generator=g2)])
    assert torch.equal(s1, s2) and sorted(s1.tolist()) == list(range(10))


def test_synthetic_images():
    x, y = cifar.synthetic_images(6, seed=0)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (6,)
    x2, y2 = cifar.synthetic_images(3, seed=0)
    assert torch.equal(x[:3], x2) and torch.equal(y[:3], y2)  # image i independent of n
    assert not torch.equal(cifar.synthetic_images(3, seed=1)[0], x2)
    # image-like: neighbouring pixels are strongly correlated, unlike noise
    a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    assert corr > 0.9
    assert x.std().item() > 0.3


def test_write_synthetic_cifar(tmp_path):
    folder = cifar.write_synthetic_cifar(tmp_path / "syn", n_train=30, n_test=10, seed=2)
    x, y = cifar.load_cifar10(folder, "train")
    assert x.shape == (30, 3, 32, 32)
    xs, ys = cifar.synthetic_uint8(30, seed=2)
    assert torch.equal(x, xs) and torch.equal(y, ys)


# --------------------------------------------------------------------------- CIFAR-10 as people have it
def test_tar_gz_read_in_place(tmp_path):
    import tarfile

    folder = cifar.write_synthetic_cifar(tmp_path / "cifar-10-batches-py", n_train=10, n_test=6, seed=3)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    x, y = cifar.load_cifar10(archive, "test")
    ref_x, ref_y = cifar.load_cifar10(folder, "test")
    assert torch.equal(x, ref_x) and torch.equal(y, ref_y)
    assert cifar.load_cifar10(archive, "train")[0].shape == (10, 3, 32, 32)
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(DataError, match="broken.tar.gz: not a readable .tar/.tar.gz archive"):
        cifar.load_cifar10(tmp_path / "broken.tar.gz", "test")


def test_python2_protocol_batch_needs_only_codecs(tmp_path):
    x, y = _batch(5, 2)
    cifar.write_batch(tmp_path / "p2", x, y, protocol=2)
    assert b"_codecs\nencode" in (tmp_path / "p2").read_bytes()
    images, labels = cifar.read_batch(tmp_path / "p2")
    assert np.array_equal(images.reshape(5, -1), x) and labels.tolist() == y
    evil = (tmp_path / "p2").read_bytes().replace(b"_codecs\nencode", b"os\nsystem\n", 1)
    (tmp_path / "evil").write_bytes(evil)
    with pytest.raises(DataError, match="global os.system is not allowed"):
        cifar.read_batch(tmp_path / "evil")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_folders(tmp_path, suffix):
    x, y = cifar.synthetic_uint8(30, seed=4)
    cifar.write_image_folders(tmp_path / "imgs", x.numpy(), y.numpy(), "test", suffix)
    cifar.write_image_folders(tmp_path / "imgs", x[:12].numpy(), y[:12].numpy(), "train", suffix)
    got_x, got_y = cifar.load_cifar10(tmp_path / "imgs", "test")
    order = sorted(range(30), key=lambda i: (int(y[i]), i))  # class by class, files in order
    assert got_y.tolist() == [int(y[i]) for i in order]
    err = (got_x.float() - x[order].float()).abs().mean().item()
    assert err == 0.0 if suffix == ".png" else err < 8.0, err   # JPEG is lossy
    img, label, source = cifar.load_test_image(tmp_path / "imgs", 3)
    assert torch.equal(img, got_x[3]) and label == got_y[3]
    k = got_y[:3].tolist().count(label)  # files of this class before it
    assert source == str(tmp_path / "imgs" / "test" / cifar.CLASSES[label] / f"{k:04d}{suffix}")
    assert cifar.load_cifar10(tmp_path / "imgs", "train", limit=5)[0].shape == (5, 3, 32, 32)


def test_image_folders_in_a_tar_gz(tmp_path):
    import tarfile

    x, y = cifar.synthetic_uint8(12, seed=5)
    root = cifar.write_image_folders(tmp_path / "cifar10", x.numpy(), y.numpy(), "test", ".png")
    with tarfile.open(tmp_path / "cifar10-png.tar.gz", "w:gz") as tar:
        tar.add(root / "test", arcname="test")
    got = cifar.load_cifar10(tmp_path / "cifar10-png.tar.gz", "test")
    ref = cifar.load_cifar10(root, "test")
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    _, _, source = cifar.load_test_image(tmp_path / "cifar10-png.tar.gz", 0)
    assert source.startswith(f"{tmp_path / 'cifar10-png.tar.gz'}:test/")


def test_image_folder_errors(tmp_path):
    from PIL import Image

    (tmp_path / "a" / "test" / "cat").mkdir(parents=True)
    Image.new("RGB", (28, 32)).save(tmp_path / "a" / "test" / "cat" / "0000.png")
    with pytest.raises(DataError, match=r"0000.png: image is 28x32, CIFAR-10 images are 32x32"):
        cifar.load_cifar10(tmp_path / "a", "test")
    (tmp_path / "b" / "test" / "kitten").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "b" / "test" / "kitten" / "0000.png")
    with pytest.raises(DataError, match="kitten: unknown class folder"):
        cifar.load_cifar10(tmp_path / "b", "test")
    (tmp_path / "c" / "test" / "dog").mkdir(parents=True)
    (tmp_path / "c" / "test" / "dog" / "0000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"0000.jpg: not a readable image \(not in a format Pillow reads\)$"):
        cifar.load_cifar10(tmp_path / "c", "test")           # not Pillow's "<_io.BytesIO object at 0x...>"
    with pytest.raises(DataError, match="image index 5 out of range: the test set has 1 images"):
        cifar.load_test_image(tmp_path / "c", 5)
    (tmp_path / "c" / "test" / "dog" / "0000.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"0000.jpg: not a readable image \(empty file\)$"):
        cifar.load_cifar10(tmp_path / "c", "test")


def test_skipped_files_and_empty_classes_are_named_once(tmp_path, capsys):
    """A stray file in an image-folder tree is skipped, not fatal, but named on stderr with the
    classes that have no image, once per split (eval, train and infer all list it)."""
    x, _ = cifar.synthetic_uint8(2, seed=4)
    root = cifar.write_image_folders(tmp_path / "imgs", x.numpy(), [3, 5], "test", ".jpg")
    (root / "test" / "airplane").mkdir()
    (root / "test" / "airplane" / "notes.txt").write_text("not an image")
    (root / "test" / ".DS_Store").write_bytes(b"\0")
    source = cifar.open_cifar10(root)
    assert source.split("test")[1].tolist() == [3, 5]
    assert source.image("test", 1)[1] == 5
    others = ", ".join(c for c in cifar.CLASSES if c not in ("cat", "dog"))
    assert capsys.readouterr().err.splitlines() == [
        f"note: {root / 'test'}: skipped 2 files that are not a .png/.jpg/.jpeg image in a class folder "
        f"(.DS_Store, airplane/notes.txt); no images of {others}"]
    x, _ = cifar.synthetic_uint8(10, seed=4)
    cifar.write_image_folders(tmp_path / "full", x.numpy(), list(range(10)), "test", ".png")
    cifar.load_cifar10(tmp_path / "full", "test")
    assert capsys.readouterr().err == ""                  # every class, nothing else: no note


def test_limit_on_image_folders_takes_every_class_in_turn(tmp_path):
    """--limit N on class-by-class image folders takes each class's files in turn (it took the
    first N files: all airplanes), and keeps the split's class-by-class order."""
    x, _ = cifar.synthetic_uint8(12, seed=4)
    labels = [0] * 5 + [1] * 4 + [7] * 3
    root = cifar.write_image_folders(tmp_path / "imgs", x.numpy(), labels, "test", ".png")
    whole_x, whole_y = cifar.load_cifar10(root, "test")
    got_x, got_y = cifar.load_cifar10(root, "test", limit=7)
    assert got_y.tolist() == [0, 0, 0, 1, 1, 7, 7]     # files 0..2 of class 0, 0..1 of 1, 0..1 of 7
    assert torch.equal(got_x, whole_x[[0, 1, 2, 5, 6, 9, 10]])
    assert cifar.load_cifar10(root, "test", limit=12)[1].tolist() == whole_y.tolist()


def test_limit_above_the_split_says_so(tmp_path, capsys):
    """A limit above the split's size takes the whole split and says so on stderr (it was
    taken silently); a limit within it says nothing."""
    x, _ = cifar.synthetic_uint8(10, seed=5)
    root = cifar.write_image_folders(tmp_path / "imgs", x.numpy(), list(range(10)), "test", ".png")
    assert len(cifar.load_cifar10(root, "test", limit=10)[1]) == 10 and capsys.readouterr().err == ""
    assert len(cifar.load_cifar10(root, "test", limit=10_000)[1]) == 10
    assert capsys.readouterr().err == "note: a limit of 10,000 images: the test split has 10, all used\n"
