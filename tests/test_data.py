"""The data layer: block splits, IDX and .npz readers, lookup, download, the embedded sample.

No test touches the network: an autouse fixture points the cache at a
temporary folder and the mirrors at a closed loopback port, and the download
tests serve files from a local HTTP server.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import importlib.util
import os
import socket
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from admm import data
from admm.data import (
    IDX_FILES,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    DataError,
    block_range,
    load_dataset,
    read_idx,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
#: Per-class training counts of MNIST, from the README of the shared data.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
#: More examples with e.g. ADMM_FUZZ_EXAMPLES=3000 (about a minute).
FUZZ = settings(
    max_examples=int(os.environ.get("ADMM_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def closed_port() -> int:
    """A loopback port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache folder, no $ADMM_DATA_DIR, and mirrors that refuse connections."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ADMM_DATA_DIR", raising=False)
    monkeypatch.setenv("ADMM_DATA_MIRRORS", f"http://127.0.0.1:{closed_port()}/")
    # A private copy of the checksum table, which the fake Fashion-MNIST files extend.
    monkeypatch.setattr(data, "FASHION_SHA256", dict(data.FASHION_SHA256))


def idx_content(magic: int, array: np.ndarray) -> bytes:
    """An IDX file's content: magic, big-endian dimensions, uint8 data."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write(path: Path, content: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
    return path


def fake_idx_folder(
    folder: Path, rng, n_train=50, n_test=20, gz=False, shape=(28, 28), labels=None, trust=True
) -> dict[str, bytes]:
    """Four small random IDX files in ``folder``; ``trust``: accepted as Fashion-MNIST (:func:`trust_fashion`)."""
    contents = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8) if labels is None else labels[prefix]
        contents[f"{prefix}-images-idx3-ubyte"] = idx_content(IMAGES_MAGIC, images)
        contents[f"{prefix}-labels-idx1-ubyte"] = idx_content(LABELS_MAGIC, y)
    for stem, content in contents.items():
        write(folder / (stem + (".gz" if gz else "")), content, gz)
    if trust:
        trust_fashion(folder)
    return contents


def trust_fashion(folder: Path) -> None:
    """Make the IDX files now in ``folder`` the Fashion-MNIST of this test (its private table)."""
    for stem in IDX_FILES:
        path = data._find_file(folder, stem)
        assert path is not None
        content = path.read_bytes()
        if content[:2] == b"\x1f\x8b":
            content = gzip.decompress(content)
        data.FASHION_SHA256[stem] = hashlib.sha256(content).hexdigest()


def mnist_folder(folder: Path, shared: Path, replace: dict[str, bytes] | None = None) -> Path:
    """``folder`` with the shared MNIST files linked in, some replaced by plain ``content``."""
    folder.mkdir(parents=True, exist_ok=True)
    replace = replace or {}
    for stem in IDX_FILES:
        if stem in replace:
            write(folder / stem, replace[stem])
        else:
            (folder / (stem + ".gz")).symlink_to(shared / (stem + ".gz"))
    return folder


def uncompressed(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


# ---------------------------------------------------------------------------
# block_range


@given(st.integers(0, 10**7), st.integers(1, 200))
def test_block_range_tiles_0_to_n(n, size):
    ranges = [block_range(n, rank, size) for rank in range(size)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(ranges[r][1] == ranges[r + 1][0] for r in range(size - 1))
    sizes = [stop - start for start, stop in ranges]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first n % size ranks get one more
    assert sum(s > n // size for s in sizes) == n % size


@pytest.mark.parametrize("n, rank, size", [(10, 0, 0), (10, 2, 2), (10, -1, 2), (-1, 0, 1)])
def test_block_range_rejects_bad_arguments(n, rank, size):
    with pytest.raises(ValueError, match=r"rank|items"):
        block_range(n, rank, size)


# ---------------------------------------------------------------------------
# The embedded sample


def test_sample_loads():
    ds = load_dataset("mnist-sample")
    assert (ds.n_train, ds.n_test, ds.n_features, ds.n_classes) == (6000, 1000, 784, 10)
    assert ds.X_train.shape == (6000, 784) and ds.X_test.shape == (1000, 784)
    assert ds.X_train.dtype == np.float64 and ds.X_train.flags.c_contiguous
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (6000,)
    assert 0.0 == ds.X_train.min() and ds.X_train.max() == 1.0
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert "embedded sample" in ds.source and ds.train_range == (0, 6000)


def test_sample_blocks_float32():
    whole = load_dataset("mnist-sample", dtype="float32")
    parts = [load_dataset("mnist-sample", rank=r, size=7, dtype="float32") for r in range(7)]
    assert all(p.X_train.dtype == np.float32 for p in parts)
    np.testing.assert_array_equal(np.concatenate([p.X_train for p in parts]), whole.X_train)
    np.testing.assert_array_equal(np.concatenate([p.y_test for p in parts]), whole.y_test)
    assert [p.train_range for p in parts] == [block_range(6000, r, 7) for r in range(7)]


def test_sample_is_the_start_of_mnist(shared_mnist):
    # Rank 0 of 10 holds the first 6000 training and the first 1000 test images.
    full = load_dataset("mnist", shared_mnist, rank=0, size=10, download=False)
    sample = load_dataset("mnist-sample")
    np.testing.assert_array_equal(sample.X_train, full.X_train)
    np.testing.assert_array_equal(sample.y_train, full.y_train)
    np.testing.assert_array_equal(sample.X_test, full.X_test)
    np.testing.assert_array_equal(sample.y_test, full.y_test)


def test_sample_regenerates_identically(shared_mnist, tmp_path):
    spec = importlib.util.spec_from_file_location("make", REPO / "tools" / "make_mnist_sample.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    digests = make.make_sample(shared_mnist, tmp_path)
    assert digests == data.SAMPLE_SHA256
    for stem in IDX_FILES:
        shipped = data._sample_folder() / (stem + ".gz")
        assert uncompressed(tmp_path / (stem + ".gz")) == uncompressed(shipped)


def test_default_falls_back_to_sample_and_says_where_it_looked(tmp_path):
    ds = load_dataset(None, tmp_path / "nowhere")
    assert ds.n_train == 6000
    assert "embedded sample" in ds.source
    assert str(tmp_path / "nowhere") in ds.source
    assert str(tmp_path / "cache" / "admm" / "mnist") in ds.source


def test_default_uses_full_mnist_when_found(shared_mnist, monkeypatch):
    monkeypatch.setenv("ADMM_DATA_DIR", str(shared_mnist))
    ds = load_dataset(rank=5, size=6)
    assert ds.n_train == 60000 and ds.source == str(shared_mnist)
    assert ds.train_range == (50000, 60000)


# ---------------------------------------------------------------------------
# Full MNIST from the shared folder


@pytest.fixture(scope="module")
def mnist32(shared_mnist):
    return load_dataset("mnist", shared_mnist, dtype="float32", download=False)


def test_mnist_full(shared_mnist, mnist32):
    ds = load_dataset("mnist", shared_mnist, download=False)
    assert (ds.n_train, ds.n_test, ds.n_features, ds.n_classes) == (60000, 10000, 784, 10)
    assert ds.X_train.shape == (60000, 784) and ds.X_test.shape == (10000, 784)
    assert np.bincount(ds.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert ds.X_train.min() == 0.0 and ds.X_train.max() == 1.0
    # Pixels are k / 255: the float32 copy is the float64 one correctly rounded.
    np.testing.assert_array_equal(mnist32.X_train, ds.X_train.astype(np.float32))
    np.testing.assert_array_equal(np.round(ds.X_test[:100] * 255) / 255, ds.X_test[:100])
    assert ds.source == str(shared_mnist)


def test_mnist_rank_blocks_concatenate(shared_mnist, mnist32):
    parts = [
        load_dataset("mnist", shared_mnist, rank=r, size=3, dtype="float32", download=False)
        for r in range(3)
    ]
    assert [p.X_test.shape[0] for p in parts] == [3334, 3333, 3333]
    for key in ("X_train", "y_train", "X_test", "y_test"):
        joined = np.concatenate([getattr(p, key) for p in parts])
        np.testing.assert_array_equal(joined, getattr(mnist32, key))
    assert all(p.n_train == 60000 and p.n_classes == 10 for p in parts)


def test_lookup_order(shared_mnist, tmp_path, monkeypatch):
    env, given_dir = tmp_path / "env", tmp_path / "given"
    mnist_folder(env / "mnist", shared_mnist)
    mnist_folder(given_dir, shared_mnist)
    cache = mnist_folder(tmp_path / "cache" / "admm" / "mnist", shared_mnist)
    assert data.locate("mnist", None, download=False) == cache
    monkeypatch.setenv("ADMM_DATA_DIR", str(env))
    assert data.locate("mnist", None, download=False) == env / "mnist"
    assert data.locate("mnist", given_dir, download=False) == given_dir
    assert data.locate("mnist", tmp_path / "empty", download=False) == env / "mnist"


def test_gzip_and_plain_files_mix(shared_mnist, tmp_path):
    # Plain test files, one under the dotted name some mirrors use.
    folder = mnist_folder(
        tmp_path / "m",
        shared_mnist,
        {stem: uncompressed(shared_mnist / (stem + ".gz")) for stem in IDX_FILES[2:]},
    )
    (folder / "t10k-images-idx3-ubyte").rename(folder / "t10k-images.idx3-ubyte")
    ds = load_dataset("mnist", folder, rank=3, size=4, download=False)
    assert ds.X_test.shape == (2500, 784) and ds.n_test == 10000
    assert ds.y_test.tolist()[:5] == list(
        uncompressed(shared_mnist / (IDX_FILES[3] + ".gz"))[8 + 7500 : 8 + 7505]
    )


def test_read_idx_gzip_equals_plain(tmp_path, rng):
    images = rng.integers(0, 256, size=(9, 4, 3), dtype=np.uint8)
    content = idx_content(IMAGES_MAGIC, images)
    plain = read_idx(write(tmp_path / "a", content), IMAGES_MAGIC, 2, 7)
    packed = read_idx(write(tmp_path / "b.gz", content, gz=True), IMAGES_MAGIC, 2, 7)
    np.testing.assert_array_equal(plain.data, images[2:7])
    np.testing.assert_array_equal(packed.data, images[2:7])
    assert (plain.gzipped, packed.gzipped) == (False, True)
    assert plain.sha256 == packed.sha256 == hashlib.sha256(content).hexdigest()


# ---------------------------------------------------------------------------
# Bad IDX input: every failure is a DataError naming the file


def test_missing_files_say_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("ADMM_DATA_DIR", str(tmp_path / "env"))
    partial = tmp_path / "given"
    write(partial / "train-images-idx3-ubyte.gz", b"x")
    with pytest.raises(DataError) as info:
        load_dataset("mnist", partial, download=False)
    message = str(info.value)
    for folder in (partial / "mnist", partial, tmp_path / "env", tmp_path / "cache" / "admm"):
        assert str(folder) in message
    assert "missing train-labels-idx1-ubyte" in message
    assert "download disabled" in message and "--data-dir" in message
    assert "\n" not in message


def test_truncated_file(tmp_path, rng):
    contents = fake_idx_folder(tmp_path, rng)
    write(tmp_path / "t10k-images-idx3-ubyte", contents["t10k-images-idx3-ubyte"][:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: truncated"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_truncated_gzip_file(tmp_path, rng):
    contents = fake_idx_folder(tmp_path, rng)
    packed = gzip.compress(contents["train-images-idx3-ubyte"])
    (tmp_path / "train-images-idx3-ubyte").unlink()
    write(tmp_path / "train-images-idx3-ubyte.gz", packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_corrupt_gzip_file(tmp_path, rng):
    contents = fake_idx_folder(tmp_path, rng)
    packed = bytearray(gzip.compress(contents["t10k-labels-idx1-ubyte"]))
    packed[-6] ^= 0xFF  # the CRC32 in the trailer
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", bytes(packed))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: corrupt or truncated gzip"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_extra_bytes(tmp_path, rng):
    contents = fake_idx_folder(tmp_path, rng)
    write(tmp_path / "train-labels-idx1-ubyte", contents["train-labels-idx1-ubyte"] + b"\0")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: extra bytes"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_wrong_magic(tmp_path, rng):
    contents = fake_idx_folder(tmp_path, rng)
    # Images where labels belong: the file is well formed, but of the wrong kind.
    write(tmp_path / "train-labels-idx1-ubyte", contents["train-images-idx3-ubyte"])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: wrong magic number 2051"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_image_and_label_counts_disagree(tmp_path, rng):
    fake_idx_folder(tmp_path, rng)
    y = rng.integers(0, 10, size=49, dtype=np.uint8)
    write(tmp_path / "train-labels-idx1-ubyte", idx_content(LABELS_MAGIC, y))
    trust_fashion(tmp_path)
    with pytest.raises(DataError, match=r"holds 50 images but .* holds 49 labels"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_labels_outside_the_classes(tmp_path, rng):
    labels = {"train": np.full(50, 3, np.uint8), "t10k": np.full(20, 10, np.uint8)}
    fake_idx_folder(tmp_path, rng, labels=labels)
    with pytest.raises(
        DataError, match=r"t10k-labels-idx1-ubyte: label 10 outside the 10 classes"
    ):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_wrong_image_shape(tmp_path, rng):
    fake_idx_folder(tmp_path, rng, shape=(20, 20))
    with pytest.raises(DataError, match=r"images of shape \(20, 20\)"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_fake_fashion_plain_files_load(tmp_path, rng):
    contents = fake_idx_folder(tmp_path, rng)
    ds = load_dataset("fashion-mnist", tmp_path, rank=1, size=2, dtype="float32", download=False)
    images = np.frombuffer(contents["train-images-idx3-ubyte"][16:], np.uint8).reshape(50, 784)
    np.testing.assert_array_equal(ds.X_train * np.float32(255), images[25:].astype(np.float32))
    assert ds.n_classes == 10 and ds.train_range == (25, 50) and ds.X_test.shape == (10, 784)


def test_mnist_checksum_mismatch(shared_mnist, tmp_path):
    labels = bytearray(uncompressed(shared_mnist / "t10k-labels-idx1-ubyte.gz"))
    labels[100] = (labels[100] + 1) % 10  # still a valid file, just not MNIST's
    folder = mnist_folder(tmp_path / "m", shared_mnist, {"t10k-labels-idx1-ubyte": bytes(labels)})
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: checksum mismatch: SHA256"):
        load_dataset("mnist", folder, download=False)


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_checksum_mismatch(tmp_path, rng, gz):
    fake_idx_folder(tmp_path, rng, gz=gz, trust=False)  # the real table: these are not it
    name = "train-labels-idx1-ubyte" + (".gz" if gz else "")
    with pytest.raises(DataError, match=rf"{name}: checksum mismatch: SHA256") as info:
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert data.FASHION_SHA256[IDX_FILES[1]] in str(info.value)


@pytest.mark.parametrize("level", [1, 9])
def test_fashion_recompressed_files_accepted(tmp_path, rng, level):
    """Verification is by content: a .gz compressed differently (as Debian's) still verifies."""
    contents = fake_idx_folder(tmp_path / "orig", rng, gz=True)
    for stem, content in contents.items():
        write(tmp_path / "re" / (stem + ".gz"), gzip.compress(content, level, mtime=12345))
        assert (tmp_path / "re" / (stem + ".gz")).read_bytes() != (
            tmp_path / "orig" / (stem + ".gz")
        ).read_bytes()
    a = load_dataset("fashion-mnist", tmp_path / "orig", download=False)
    b = load_dataset("fashion-mnist", tmp_path / "re", download=False)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


@pytest.mark.parametrize("stem", IDX_FILES)
def test_fashion_one_changed_byte_refused(tmp_path, rng, stem):
    """One byte of content changed (the file still well formed), recompressed: refused."""
    contents = fake_idx_folder(tmp_path, rng, gz=True)
    damaged = bytearray(contents[stem])
    damaged[-1] = (damaged[-1] + 1) % 10  # a valid label or pixel, just a different one
    write(tmp_path / (stem + ".gz"), bytes(damaged), gz=True)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", tmp_path, download=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / stem}.gz: checksum mismatch: SHA256")
    assert hashlib.sha256(damaged).hexdigest() in message and "\n" not in message


def test_fashion_debian_package():
    """The files of Debian's dataset-fashion-mnist (recompressed .gz) verify and load."""
    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({folder})")
    ds = load_dataset("fashion-mnist", folder, rank=3, size=4, dtype="float32", download=False)
    assert (ds.n_train, ds.n_test, ds.n_features, ds.n_classes) == (60000, 10000, 784, 10)
    assert ds.train_range == (45000, 60000) and ds.X_train.shape == (15000, 784)
    assert ds.X_test.shape == (2500, 784) and 0 <= ds.X_train.min() < ds.X_train.max() <= 1
    # The published class balance: 6000 training and 1000 test images per class.
    y = read_idx(folder / "train-labels-idx1-ubyte.gz", LABELS_MAGIC).data
    assert np.bincount(y).tolist() == [6000] * 10


def test_mnist_files_given_as_fashion(shared_mnist, tmp_path, rng):
    fake_idx_folder(tmp_path, rng)
    write(
        tmp_path / "train-labels-idx1-ubyte", uncompressed(shared_mnist / (IDX_FILES[1] + ".gz"))
    )
    with pytest.raises(DataError, match="MNIST file, not Fashion-MNIST"):
        load_dataset("fashion-mnist", tmp_path, download=False)


def test_unknown_data_and_bad_dtype():
    with pytest.raises(DataError, match="unknown data 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="float32 or float64"):
        load_dataset("mnist-sample", dtype="int32")
    with pytest.raises(ValueError, match="rank"):
        load_dataset("mnist-sample", rank=2, size=2)


# ---------------------------------------------------------------------------
# Download from a local HTTP server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_verifies_and_falls_back_to_the_next_mirror(
    shared_mnist, http_root, tmp_path, monkeypatch
):
    root, url = http_root
    mnist_folder(root / "mnist", shared_mnist)
    dead = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setenv("ADMM_DATA_MIRRORS", f"{dead} {url}/{{name}}/")
    ds = load_dataset("mnist", rank=9, size=10)
    cache = tmp_path / "cache" / "admm" / "mnist"
    assert ds.source == str(cache) and ds.n_train == 60000 and ds.X_train.shape == (6000, 784)
    assert sorted(p.name for p in cache.iterdir()) == sorted(s + ".gz" for s in IDX_FILES)
    # Found in the cache from now on, without a mirror.
    assert data.locate("mnist", None, download=False) == cache


def test_download_checksum_mismatch_keeps_nothing(http_root, tmp_path, monkeypatch, rng):
    root, url = http_root
    fake_idx_folder(root / "fashion-mnist", rng, gz=True, trust=False)
    monkeypatch.setenv("ADMM_DATA_MIRRORS", f"{url}/{{name}}")
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert f"{url}/fashion-mnist/train-images-idx3-ubyte.gz: " in message
    assert "checksum mismatch: SHA256" in message and "looked in" in message
    assert list((tmp_path / "cache" / "admm" / "fashion-mnist").iterdir()) == []


def test_download_succeeds_with_matching_checksums(http_root, tmp_path, monkeypatch, rng):
    root, url = http_root
    fake_idx_folder(root / "fashion-mnist", rng, gz=True)
    monkeypatch.setenv("ADMM_DATA_MIRRORS", f"{url}/{{name}}/")
    ds = load_dataset("fashion-mnist")
    assert ds.n_train == 50 and ds.source == str(tmp_path / "cache" / "admm" / "fashion-mnist")


def test_unreachable_mirrors_say_where_and_how(http_root, tmp_path, monkeypatch):
    _, url = http_root  # serves nothing: 404
    port = closed_port()
    monkeypatch.setenv("ADMM_DATA_MIRRORS", f"http://127.0.0.1:{port}/, {url}/")
    with pytest.raises(DataError) as info:
        load_dataset("mnist", tmp_path / "given")
    message = str(info.value)
    assert "looked in" in message and str(tmp_path / "given") in message
    assert "download failed" in message and "Connection refused" in message
    assert "HTTP 404" in message and "Provide them by downloading" in message
    assert not list((tmp_path / "cache" / "admm" / "mnist").iterdir())


# ---------------------------------------------------------------------------
# User .npz files


def save_npz(path: Path, compressed: bool = False, **arrays) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize(
    "X_dtype, order", [("float64", "C"), (">f4", "C"), ("int16", "C"), ("float64", "F")]
)
def test_npz_blocks(tmp_path, rng, compressed, X_dtype, order):
    X = np.asarray(rng.normal(size=(23, 5)) * 100, dtype=X_dtype, order=order)
    y = rng.integers(0, 4, size=23)
    Xt, yt = np.asarray(rng.normal(size=(4, 5)), dtype=X_dtype), np.array([0, 1, 6, 2])
    path = save_npz(tmp_path / "d.npz", compressed, X_train=X, y_train=y, X_test=Xt, y_test=yt)
    parts = [load_dataset(str(path), rank=r, size=3, dtype="float32") for r in range(3)]
    np.testing.assert_array_equal(np.concatenate([p.X_train for p in parts]), X.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([p.y_train for p in parts]), y)
    np.testing.assert_array_equal(np.concatenate([p.X_test for p in parts]), Xt.astype(np.float32))
    for p in parts:
        assert p.X_train.dtype == np.float32 and p.X_train.flags.c_contiguous
        assert p.y_train.dtype == np.int64
        assert (p.n_train, p.n_test, p.n_features, p.n_classes) == (23, 4, 5, 7)
        assert p.name == p.source == str(path)
    assert [p.train_range for p in parts] == [(0, 8), (8, 16), (16, 23)]


def test_npz_without_test_set_and_float_labels(tmp_path, rng):
    path = save_npz(tmp_path / "d.npz", X_train=rng.normal(size=(6, 2)), y_train=[0.0, 2.0] * 3)
    ds = load_dataset(str(path))
    assert ds.X_test is None and ds.y_test is None and ds.n_test == 0
    assert ds.y_train.tolist() == [0, 2] * 3 and ds.n_classes == 3


X6 = np.arange(12.0).reshape(6, 2)
Y6 = np.array([0, 1, 2, 0, 1, 2])


def _with(**changes):
    arrays = {"X_train": X6, "y_train": Y6}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def _nan_at(i, j, value=np.nan):
    X = X6.copy()
    X[i, j] = value
    return X


BAD_NPZ = {
    "missing X_train": (_with(X_train=None), "missing array X_train"),
    "missing y_train": (_with(y_train=None), "missing array y_train"),
    "X_test alone": (_with(X_test=X6), "X_test and y_test must be given together"),
    "X 1-D": (_with(X_train=X6.ravel()), r"X_train has shape \(12,\), expected \(m, n_features\)"),
    # (2-D or fractional y are real targets: a regression, tests/test_regression.py.)
    "y 3-D": (
        _with(y_train=Y6[:, None, None]),
        r"y_train has shape \(6, 1, 1\), expected \(m,\) or \(m, n_targets\)",
    ),
    "rows differ": (_with(y_train=Y6[:5]), "X_train has 6 rows but y_train has 5 labels"),
    "features differ": (
        _with(X_test=np.zeros((2, 3)), y_test=[0, 1]),
        "X_test has 3 features but X_train has 2",
    ),
    "complex X": (_with(X_train=X6 + 1j), "X_train has dtype complex128, expected real numbers"),
    "string X": (_with(X_train=X6.astype(str)), "X_train has dtype <U32, expected real"),
    "object X": (_with(X_train=X6.astype(object)), "X_train has dtype object"),
    "structured X": (
        _with(X_train=np.zeros(6, dtype=[("a", "f8"), ("b", "f8")])),
        "expected a plain numeric array",
    ),
    "string y": (_with(y_train=Y6.astype(str)), "y_train has dtype <U21, expected integer labels"),
    "NaN y": (_with(y_train=np.where(Y6 == 2, np.nan, Y6)), "labels must be integers, found nan"),
    "negative y": (_with(y_train=Y6 - 1), "labels must be >= 0, found -1 at index 0"),
    "NaN X": (_with(X_train=_nan_at(4, 1)), "non-finite value NaN at row 4, column 1"),
    "inf X": (_with(X_train=_nan_at(0, 0, -np.inf)), "non-finite value inf at row 0, column 0"),
    "NaN test X": (_with(X_test=_nan_at(1, 0)[:2], y_test=[0, 0]), "X_test: non-finite value NaN"),
    "float32 overflow": (
        _with(X_train=_nan_at(2, 1, 1e300)),
        r"value 1e\+300 overflows float32 at row 2",
    ),
    "empty X": (_with(X_train=np.zeros((0, 2)), y_train=np.zeros(0, int)), "X_train is empty"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_npz_bad_input(tmp_path, case):
    arrays, message = BAD_NPZ[case]
    path = save_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(str(path), dtype="float32")
    assert str(path) in str(info.value)


def test_npz_error_only_on_the_rank_that_holds_it(tmp_path):
    path = save_npz(tmp_path / "d.npz", X_train=_nan_at(4, 1), y_train=Y6)
    ds = load_dataset(str(path), rank=0, size=2)  # rows 0..2 are fine
    assert ds.X_train.shape == (3, 2)
    with pytest.raises(DataError, match="row 4, column 1"):  # the global row index
        load_dataset(str(path), rank=1, size=2)


def test_npz_unreadable_files(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.npz: file not found"):
        load_dataset(str(tmp_path / "nothing.npz"))
    with pytest.raises(DataError, match=r"junk\.npz: not a readable \.npz file"):
        load_dataset(str(write(tmp_path / "junk.npz", b"hello world")))
    good = save_npz(tmp_path / "good.npz", X_train=X6, y_train=Y6).read_bytes()
    cut = write(tmp_path / "cut.npz", good[: len(good) // 2])
    with pytest.raises(DataError, match=r"cut\.npz: not a readable \.npz file"):
        load_dataset(str(cut))


# ---------------------------------------------------------------------------
# User HDF5 files: the same arrays and checks as .npz, each rank reading its rows


@pytest.fixture
def h5py():
    return pytest.importorskip("h5py")


def save_h5(h5py, path: Path, **arrays) -> Path:
    with h5py.File(path, "w") as f:
        for name, array in arrays.items():
            f.create_dataset(name, data=np.asarray(array))
    return path


def assert_same_dataset(a, b) -> None:
    for field in ("X_train", "y_train", "X_test", "y_test"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            assert x.dtype == y.dtype and x.flags.c_contiguous and y.flags.c_contiguous
            np.testing.assert_array_equal(x, y, err_msg=field)
    for field in ("n_train", "n_test", "n_features", "n_classes", "train_range"):
        assert getattr(a, field) == getattr(b, field), field


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize("block", [1, 4])
@pytest.mark.parametrize("chunk_bytes", [None, 100])
def test_hdf5_blocks_equal_npz(h5py, tmp_path, rng, monkeypatch, size, block, chunk_bytes):
    if chunk_bytes is not None:  # 2 rows of 5 float64 a read: many hyperslabs per rank
        monkeypatch.setattr(data, "_CHUNK", chunk_bytes)
    arrays = {
        "X_train": rng.normal(size=(23, 5)) * 100,
        "y_train": rng.integers(0, 4, size=23),
        "X_test": rng.normal(size=(7, 5)),
        "y_test": np.array([0, 1, 6, 2, 0, 0, 1]),
    }
    h5 = save_h5(h5py, tmp_path / "d.h5", **arrays)
    npz = save_npz(tmp_path / "d.npz", **arrays)
    rows = []
    for rank in range(size):
        a = load_dataset(str(h5), rank=rank, size=size, dtype="float32", block=block)
        b = load_dataset(str(npz), rank=rank, size=size, dtype="float32", block=block)
        assert_same_dataset(a, b)
        assert a.train_range == block_range(23, rank, size, block)
        assert a.name == a.source == str(h5)
        rows.append(a.X_train)
    np.testing.assert_array_equal(np.concatenate(rows), arrays["X_train"].astype(np.float32))


@pytest.mark.parametrize("stored", ["float32", "int8", "uint16", ">f8", "float16"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hdf5_dtypes_converted(h5py, tmp_path, rng, stored, dtype):
    X = (rng.normal(size=(9, 3)) * 50).astype(stored)
    y = rng.integers(0, 3, size=9).astype("int8")
    path = save_h5(h5py, tmp_path / "d.hdf5", X_train=X, y_train=y)
    ds = load_dataset(str(path), rank=1, size=2, dtype=dtype)
    np.testing.assert_array_equal(ds.X_train, X[5:].astype(dtype))
    assert ds.X_train.dtype == dtype and ds.y_train.dtype == np.int64
    assert ds.y_train.tolist() == y[5:].tolist() and ds.X_test is None and ds.n_test == 0


def test_hdf5_names(h5py, tmp_path, rng):
    X, y = rng.normal(size=(6, 2)), np.array([0, 1, 2, 0, 1, 2])
    path = tmp_path / "named.h5"
    with h5py.File(path, "w") as f:
        f["train/images"], f["train/labels"] = X, y
        f["test/images"], f["test/labels"] = X[:2], y[:2]
    names = {
        "X_train": "train/images",
        "y_train": "train/labels",
        "X_test": "test/images",
        "y_test": "test/labels",
    }
    ds = load_dataset(str(path), names=names)
    np.testing.assert_array_equal(ds.X_test, X[:2])
    assert ds.n_train == 6 and ds.n_test == 2
    with pytest.raises(DataError, match=r"missing dataset X_train \(found: test/images, "):
        load_dataset(str(path))
    with pytest.raises(DataError, match=r"train/labels \(y_train\) has 6 labels"):
        load_dataset(str(path), names={**names, "X_train": "test/images"})
    with pytest.raises(DataError, match=r"train \(X_train\) is a group, expected a dataset"):
        load_dataset(str(path), names={**names, "X_train": "train"})
    with pytest.raises(ValueError, match=r"names: unknown keys \['x_train'\]"):
        load_dataset(str(path), names={"x_train": "train/images"})


#: The bad inputs of .npz that HDF5 can store (it has no unicode or object arrays).
BAD_HDF5 = [case for case in BAD_NPZ if case not in ("string X", "object X", "string y")]


@pytest.mark.parametrize("case", BAD_HDF5)
def test_hdf5_bad_input(h5py, tmp_path, case):
    """Every problem gives the one-line message of the same problem in a .npz."""
    arrays, message = BAD_NPZ[case]
    message = message.replace("missing array", "missing dataset")
    path = save_h5(h5py, tmp_path / "bad.h5", **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(str(path), dtype="float32")
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_hdf5_error_only_on_the_rank_that_holds_it(h5py, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_CHUNK", 16)  # one row a read
    path = save_h5(h5py, tmp_path / "d.h5", X_train=_nan_at(4, 1), y_train=Y6)
    assert load_dataset(str(path), rank=0, size=2).X_train.shape == (3, 2)
    with pytest.raises(DataError, match="row 4, column 1"):  # the global row index
        load_dataset(str(path), rank=1, size=2)


def test_hdf5_unreadable_files(h5py, tmp_path):
    with pytest.raises(DataError, match=r"nothing\.h5: file not found"):
        load_dataset(str(tmp_path / "nothing.h5"))
    with pytest.raises(DataError, match=r"junk\.hdf5: not an HDF5 file$"):
        load_dataset(str(write(tmp_path / "junk.hdf5", b"hello world" * 100)))
    npz = save_npz(tmp_path / "really.npz", X_train=X6, y_train=Y6)
    with pytest.raises(DataError, match=r"really\.h5: not an HDF5 file$"):
        load_dataset(str(write(tmp_path / "really.h5", npz.read_bytes())))
    good = save_h5(h5py, tmp_path / "good.h5", X_train=X6, y_train=Y6).read_bytes()
    cut = write(tmp_path / "cut.h5", good[: len(good) // 2])
    with pytest.raises(DataError, match=r"cut\.h5: not (an|a readable) HDF5 file") as info:
        load_dataset(str(cut))
    assert "\n" not in str(info.value)


def test_hdf5_without_h5py(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)  # import h5py fails
    path = write(tmp_path / "d.h5", b"anything")
    with pytest.raises(DataError, match=r"d\.h5: reading HDF5 files needs h5py: pip install"):
        load_dataset(str(path))


# ---------------------------------------------------------------------------
# Fuzzing the readers: any input either loads or raises DataError


_FUZZ_DIR = Path(tempfile.mkdtemp(prefix="admm-fuzz-"))


def _valid_idx(gz: bool, magic: int) -> bytes:
    array = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(5, 3, 4)
    content = idx_content(magic, array if magic == IMAGES_MAGIC else array[:, 0, 0])
    return gzip.compress(content, mtime=0) if gz else content


@st.composite
def mutated(draw, valid: bytes) -> bytes:
    """``valid`` truncated, with bytes overwritten, inserted or deleted."""
    content = bytearray(
        valid[: draw(st.integers(0, len(valid)))] if draw(st.booleans()) else valid
    )
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["set", "insert", "delete"]))
        at = draw(st.integers(0, max(len(content) - 1, 0)))
        if kind == "set" and content:
            content[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            content[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif content:
            del content[at]
    return bytes(content)


def _read_or_data_error(content: bytes, magic: int) -> None:
    path = _FUZZ_DIR / "fuzz.idx"
    path.write_bytes(content)
    with contextlib.suppress(DataError):
        block = read_idx(path, magic, 1, 3)
        assert block.data.shape[0] == min(3, block.count) - min(1, block.count)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]))
def test_fuzz_idx_random_bytes(content, magic):
    _read_or_data_error(content, magic)


@FUZZ
@given(st.data(), st.booleans(), st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]))
def test_fuzz_idx_mutations(draw_data, gz, magic):
    content = draw_data.draw(mutated(_valid_idx(gz, magic)))
    _read_or_data_error(content, magic)


def _valid_npz(compressed: bool) -> bytes:
    path = _FUZZ_DIR / f"valid-{compressed}.npz"
    save_npz(path, compressed, X_train=X6, y_train=Y6, X_test=X6[:2], y_test=Y6[:2])
    return path.read_bytes()


@FUZZ
@given(st.data(), st.booleans())
def test_fuzz_npz_mutations(draw_data, compressed):
    path = _FUZZ_DIR / "fuzz.npz"
    path.write_bytes(draw_data.draw(mutated(_valid_npz(compressed))))
    with contextlib.suppress(DataError):
        ds = load_dataset(str(path), rank=1, size=2)
        assert ds.X_train.shape[1] == ds.n_features and np.isfinite(ds.X_train).all()
