"""Training data: MNIST, Fashion-MNIST, the embedded MNIST sample and user ``.npz``/HDF5 files.

Every function here is local (no MPI): under ``mpiexec`` each rank calls
:func:`load_dataset` with its own ``rank`` and ``size`` and keeps only its
contiguous block of samples (:func:`block_range`). Files are streamed: a rank
holds the raw ``uint8`` bytes of its own block, never a float copy of the
whole training set. Any problem with the data or the files raises
:class:`DataError` with a one-line message naming the file and the problem;
the caller agrees errors across ranks.

Where the IDX files are looked for, in order (the first folder holding all
four files wins; in each folder ``DIR/<name>/`` is tried before ``DIR``):

1. ``data_dir`` (``--data-dir``),
2. ``$ADMM_DATA_DIR``,
3. the user cache ``$XDG_CACHE_HOME/admm`` (default ``~/.cache/admm``).

When none holds them and ``download`` is true, the files are downloaded into
``<cache>/<name>/`` from the official mirrors, verified and renamed into place.
``$ADMM_DATA_MIRRORS`` replaces the mirror list: base URLs separated by
whitespace or commas, ``{name}`` standing for the data set name, e.g.
``ADMM_DATA_MIRRORS="http://fileserver/datasets/{name}/"``.

Checksums: every file of MNIST, Fashion-MNIST and the embedded sample is
checked by the SHA256 of its uncompressed content, so a recompressed ``.gz``
(such as the files of Debian's ``dataset-fashion-mnist`` package in
``/usr/share/datasets/fashion-mnist``) verifies as well as the original
``.gz`` or an uncompressed copy, and one changed byte of content does not.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import importlib.resources
import logging
import os
import re
import struct
import tempfile
import typing
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

__all__ = ["BUILTIN", "DataError", "Dataset", "block_range", "load_dataset"]

log = logging.getLogger(__name__)

BUILTIN = ("mnist", "fashion-mnist", "mnist-sample")
#: What a user file's y_train holds (``load_dataset(task=...)``, ``--task``).
TASKS = ("auto", "classification", "regression")

#: The four IDX files of a data set, in the order (train images, train
#: labels, test images, test labels).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
IMAGE_SHAPE = (28, 28)
N_CLASSES_IDX = 10

#: SHA256 of the uncompressed MNIST files (README of the shared data, identical
#: to the canonical distribution).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: SHA256 of the uncompressed Fashion-MNIST files, computed from the files of
#: Debian's ``dataset-fashion-mnist`` 0.0~git20200523.55506a9-1 (built from
#: zalandoresearch/fashion-mnist at 55506a9; its ``.gz`` files are recompressed,
#: so their MD5s differ from :data:`FASHION_GZ_MD5`). What was cross-checked:
#: the headers declare 60000 / 10000 items of 28x28 and the sizes match
#: (47040016, 60008, 7840016, 10008 bytes); every class has exactly 6000
#: training and 1000 test labels, as the Fashion-MNIST paper states; the MD5s
#: of the uncompressed files (f4a8712d..., 9018921c..., 8181f547..., 15d48437...)
#: equal the "raw" MD5s that third-party loaders list next to the published
#: ``.gz`` MD5s below, and other public code lists these same SHA256s. The
#: original ``.gz`` files themselves could not be downloaded here, so their
#: MD5s were not recomputed.
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: MD5 of the original Fashion-MNIST ``.gz`` files, as published by
#: zalandoresearch/fashion-mnist (README) and used by torchvision. Not checked
#: (a recompressed file differs); kept as the reference for :data:`FASHION_SHA256`.
FASHION_GZ_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: SHA256 of the uncompressed embedded sample (written by
#: tools/make_mnist_sample.py): the first 6000 training and 1000 test images.
SAMPLE_SHA256 = {
    "train-images-idx3-ubyte": "2782ff6f3467f3487a520503c34fe99b761aa97623af029969e59716ac3585c3",
    "train-labels-idx1-ubyte": "0d830540a6191e75a9f5cd63cd5b4bde38960b893784bbf456d560179296d7cd",
    "t10k-images-idx3-ubyte": "de7c252b04f05e1f8309634180ccdf286dc6dbac8c579b74e76e02ae0331ca52",
    "t10k-labels-idx1-ubyte": "832c0d20f0dc42e575488c75a83a970787d4c8d4d05831b2ef03701b4a478a90",
}
SAMPLE_DESCRIPTION = "the first 6000 training and 1000 test images of MNIST"

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
#: Seconds to wait on each mirror before trying the next one.
DOWNLOAD_TIMEOUT = 10.0

_CHUNK = 1 << 22
_GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """A problem with the data or its files; the message names the file and the problem."""


@dataclass
class Dataset:
    """This rank's block of a data set, with the global sizes.

    ``X_*`` are ``(m_local, n_features)`` C-contiguous arrays in the requested
    dtype (IDX pixels scaled to [0, 1]; ``.npz`` and HDF5 values as given). For
    ``task == "classification"``, ``y_*`` are ``(m_local,)`` int64 labels in
    ``0 .. n_classes - 1``; for ``"regression"`` (a user file's real-valued
    targets), ``y_*`` are ``(m_local,)`` or ``(m_local, n_targets)`` arrays in the
    requested dtype and ``n_classes`` is 0.
    """

    name: str
    source: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    n_train: int
    n_test: int
    n_features: int
    n_classes: int
    train_range: tuple[int, int]
    task: str = "classification"
    #: Real targets per sample (regression): 1 for ``(m,)`` targets.
    n_targets: int = 0


def block_range(n: int, rank: int, size: int, block: int = 1) -> tuple[int, int]:
    """Contiguous share of n items for rank of size, in whole blocks of ``block`` items.

    The ``ceil(n / block)`` blocks (the last one may be shorter) are dealt out
    in order, as evenly as possible: the first ``n_blocks % size`` ranks get
    one block more. ``block=1`` splits single items (sizes differ by at most
    one); a larger ``block`` gives the block-aligned split that
    ``ADMMNetwork(deterministic=True, block_size=block)`` needs.

    Returns ``(start, stop)``, global indices ``start <= i < stop``; the ranges
    of ranks ``0 .. size - 1`` tile ``0 .. n`` in order.
    """
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"need 0 <= rank < size and size >= 1, got rank={rank}, size={size}")
    if n < 0:
        raise ValueError(f"number of items must be >= 0, got {n}")
    if block < 1:
        raise ValueError(f"block must be a positive number of items, got {block}")
    base, extra = divmod(-(-n // block), size)
    first = rank * base + min(rank, extra)
    stop = first + base + (1 if rank < extra else 0)
    return min(first * block, n), min(stop * block, n)


# ---------------------------------------------------------------------------
# IDX files


@dataclass
class IdxBlock:
    """Rows ``start:stop`` of an IDX file: ``data`` is ``(stop - start, *dims[1:])`` uint8."""

    path: Path
    count: int
    dims: tuple[int, ...]
    data: np.ndarray
    sha256: str
    gzipped: bool


@contextlib.contextmanager
def _open_maybe_gzip(path: Path) -> Iterator[tuple[IO[bytes], bool]]:
    """The uncompressed byte stream of ``path``: gzip is recognised by its magic bytes, not its name."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if gzipped:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield typing.cast(IO[bytes], stream), True
        else:
            yield raw, False


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end of the stream."""
    parts = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_idx(
    path: str | os.PathLike,
    magic: int,
    start: int = 0,
    stop: int | None = None,
    sha256: str | None = None,
) -> IdxBlock:
    """Read rows ``start:stop`` of a uint8 IDX file (gzip or plain), checking everything.

    Checks the magic number (``2051`` images, ``2049`` labels: uint8 with 3 or
    1 dimensions), that the content holds exactly the bytes its header
    declares, and with ``sha256`` the SHA256 of the whole uncompressed
    content. The file is streamed: only the rows of the block are kept.
    ``stop=None`` means the end; a block beyond the item count is clipped.
    Raises :class:`DataError` on any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with _open_maybe_gzip(path) as (stream, gzipped):
            block = _read_idx_stream(stream, path, magic, start, stop)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        # Truncated gzip -> EOFError, bad header -> BadGzipFile (an OSError),
        # damaged deflate data or CRC -> zlib.error / BadGzipFile.
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    block.gzipped = gzipped
    if sha256 and block.sha256 != sha256:
        raise _checksum_error(path, block.sha256, sha256)
    return block


def _checksum_error(path: Path, found: str, expected: str) -> DataError:
    return DataError(
        f"{path}: checksum mismatch: SHA256 of the uncompressed content is "
        f"{found}, expected {expected} (a damaged or different file)"
    )


def _read_idx_stream(
    stream: IO[bytes], path: Path, magic: int, start: int, stop: int | None
) -> IdxBlock:
    head = _read_exact(stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: too short for an IDX file ({len(head)} bytes)")
    found = int.from_bytes(head, "big")
    if found != magic:
        kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(magic, "IDX")
        raise DataError(
            f"{path}: wrong magic number {found} (0x{found:08x}), expected {magic} for an "
            f"IDX {kind} file"
        )
    ndim = magic & 0xFF
    raw_dims = _read_exact(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    count = dims[0]
    row = int(np.prod(dims[1:], dtype=np.int64))
    expected = count * row
    stop = count if stop is None else min(stop, count)
    start = min(max(start, 0), stop)
    lo, hi = start * row, stop * row

    digest = hashlib.sha256(head + raw_dims)
    kept = bytearray()
    offset = 0
    while offset < expected:
        chunk = stream.read(min(_CHUNK, expected - offset))
        if not chunk:
            break
        digest.update(chunk)
        a, b = max(lo - offset, 0), min(hi - offset, len(chunk))
        if a < b:
            kept += chunk[a:b]
        offset += len(chunk)
    if offset < expected:
        raise DataError(
            f"{path}: truncated: the header declares {count} items of shape {dims[1:]} "
            f"({expected} bytes) but the content has only {offset}"
        )
    if stream.read(1):
        raise DataError(
            f"{path}: extra bytes after the {count} items of shape {dims[1:]} the header declares"
        )
    data = np.frombuffer(kept, dtype=np.uint8).reshape((stop - start, *dims[1:]))
    return IdxBlock(path, count, dims, data, digest.hexdigest(), False)


def _find_file(folder: Path, stem: str) -> Path | None:
    """``stem.gz``, ``stem``, or the ``train-images.idx3-ubyte`` spelling of some mirrors."""
    dotted = re.sub(r"-(idx\d-ubyte)$", r".\1", stem)
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def _verify_known(
    name: str, path: Path, stem: str, magic: int, start: int = 0, stop: int | None = None
) -> IdxBlock:
    """Rows ``start:stop`` of ``path``, file ``stem`` of data set ``name``, verified against its checksum."""
    table = {"mnist": MNIST_SHA256, "fashion-mnist": FASHION_SHA256, "mnist-sample": SAMPLE_SHA256}
    expected = table[name][stem]
    block = read_idx(path, magic, start, stop)
    if block.sha256 != expected:
        if name == "fashion-mnist" and block.sha256 == MNIST_SHA256[stem]:
            raise DataError(f"{path}: this is the MNIST file, not Fashion-MNIST")
        raise _checksum_error(path, block.sha256, expected)
    if magic == IMAGES_MAGIC and block.dims[1:] != IMAGE_SHAPE:
        raise DataError(f"{path}: images of shape {block.dims[1:]}, expected {IMAGE_SHAPE}")
    return block


def _read_known(
    name: str, folder: Path, stem: str, magic: int, start: int = 0, stop: int | None = None
) -> IdxBlock:
    path = _find_file(folder, stem)
    if path is None:
        raise DataError(f"{folder / stem}[.gz]: file not found")
    return _verify_known(name, path, stem, magic, start, stop)


def _load_idx_folder(
    name: str,
    folder: Path,
    rank: int,
    size: int,
    dtype: np.dtype,
    source: str,
    block: int = 1,
    train: bool = True,
) -> Dataset:
    """Read this rank's block of the four IDX files of a known data set in ``folder``
    (without ``train``, not the training images: none of them is needed)."""
    splits: list = []
    for images_stem, labels_stem in ((IDX_FILES[0], IDX_FILES[1]), (IDX_FILES[2], IDX_FILES[3])):
        # Labels are small: every rank reads them all (n_classes needs them).
        y = _read_known(name, folder, labels_stem, LABELS_MAGIC, 0, None)
        if not splits and not train:
            splits.append((None, y.data[:0].astype(np.int64), y, (0, 0)))
            continue
        start, stop = block_range(y.count, rank, size, block)
        X = _read_known(name, folder, images_stem, IMAGES_MAGIC, start, stop)
        if X.count != y.count:
            raise DataError(f"{X.path} holds {X.count} images but {y.path} holds {y.count} labels")
        if y.count == 0:
            raise DataError(f"{y.path}: no samples")
        if y.data.max() >= N_CLASSES_IDX:
            raise DataError(
                f"{y.path}: label {int(y.data.max())} outside the {N_CLASSES_IDX} classes"
            )
        features = np.empty((stop - start, int(np.prod(X.dims[1:]))), dtype=dtype)
        # Divide in the target dtype: uint8 -> float is exact, so each pixel is
        # the correctly rounded p / 255 in float32 as in float64.
        np.divide(X.data.reshape(features.shape), dtype.type(255), out=features)
        splits.append((features, y.data[start:stop].astype(np.int64), y, (start, stop)))
    (X_train, y_train, labels_train, train_range), (X_test, y_test, labels_test, _) = splits
    if X_train is None:
        X_train = np.empty((0, X_test.shape[1]), dtype=dtype)
    return Dataset(
        name=name,
        source=source,
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        n_train=labels_train.count,
        n_test=labels_test.count,
        n_features=X_train.shape[1],
        n_classes=int(max(labels_train.data.max(), labels_test.data.max())) + 1,
        train_range=train_range,
    )


# ---------------------------------------------------------------------------
# Finding and downloading the IDX files


def cache_dir() -> Path:
    """The user cache folder: ``$XDG_CACHE_HOME/admm``, else ``~/.cache/admm``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "admm"


def search_folders(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders where data set ``name`` is looked for, in order (see the module docstring)."""
    folders = []
    for root in (data_dir, os.environ.get("ADMM_DATA_DIR") or None):
        if root is not None:
            folders += [Path(root) / name, Path(root)]
    folders.append(cache_dir() / name)
    return list(dict.fromkeys(folders))


def _folder_state(folder: Path) -> str | None:
    """None when ``folder`` holds all four files, else what it lacks (for the error message)."""
    if not folder.is_dir():
        return "no such folder"
    missing = [stem for stem in IDX_FILES if _find_file(folder, stem) is None]
    if not missing:
        return None
    if len(missing) == len(IDX_FILES):
        return "no IDX files"
    return "missing " + ", ".join(missing)


def mirrors(name: str) -> list[str]:
    """Base URLs to download data set ``name`` from: ``$ADMM_DATA_MIRRORS`` or the official ones."""
    env = os.environ.get("ADMM_DATA_MIRRORS", "").strip()
    bases = [b.replace("{name}", name) for b in re.split(r"[\s,]+", env) if b] if env else []
    return [b if b.endswith("/") else b + "/" for b in bases or MIRRORS[name]]


def _download_file(name: str, stem: str, dest: Path, urls: list[str]) -> list[str]:
    """Fetch ``stem.gz`` into ``dest`` from the first mirror that serves a verified copy.

    Each attempt goes to a temporary file in ``dest`` that is renamed only after
    its checksum and structure verify, so concurrent ranks and interrupted
    downloads never leave a partial file under the final name. Returns the
    failures, one per mirror (empty on success).
    """
    magic = IMAGES_MAGIC if "images" in stem else LABELS_MAGIC
    failures = []
    for base in urls:
        url = base + stem + ".gz"
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{stem}.", suffix=".part")
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response,
            ):
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
            _verify_known(name, Path(tmp), stem, magic, 0, 0)
            os.replace(tmp, dest / (stem + ".gz"))
            log.info("downloaded %s to %s", url, dest)
            return []
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason: object
            if isinstance(exc, urllib.error.HTTPError):
                reason = f"HTTP {exc.code} {exc.reason}"
            else:
                reason = getattr(exc, "reason", None) or exc
            failures.append(f"{url}: {str(reason).replace(tmp, 'download')}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return failures


def locate(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder holding the four IDX files of ``name`` ("mnist" or "fashion-mnist").

    Looks in :func:`search_folders`; when no folder holds all four and
    ``download`` is true, downloads the missing files into the cache folder.
    Only checks that the files exist; :func:`load_dataset` verifies them.
    Raises :class:`DataError` saying where it looked and how to provide the files.
    """
    looked = []
    for folder in search_folders(name, data_dir):
        state = _folder_state(folder)
        if state is None:
            return folder
        looked.append(f"{folder} ({state})")
    dest = cache_dir() / name
    urls = mirrors(name)
    if download:
        try:
            dest.mkdir(parents=True, exist_ok=True)
            failures = []
            for stem in IDX_FILES:
                if _find_file(dest, stem) is None:
                    failures = _download_file(name, stem, dest, urls)
                    if failures:
                        break
        except OSError as exc:
            failures = [f"cannot write to {dest}: {exc}"]
        if not failures:
            return dest
        tried = "download failed: " + "; ".join(failures)
    else:
        tried = "download disabled"
    files = ", ".join(stem + ".gz" for stem in IDX_FILES)
    raise DataError(
        f"{name} files not found: looked in {'; '.join(looked)}; {tried}. Provide them by "
        f"downloading {files} from {MIRRORS[name][0]} into one of those folders, or into a folder "
        "given as data_dir (--data-dir DIR) or $ADMM_DATA_DIR"
    )


def _sample_folder() -> Path:
    """The embedded sample's folder inside the installed package."""
    folder = importlib.resources.files("admm") / "datasets" / "mnist-sample"
    if not isinstance(folder, Path):  # a zipped install: the folder has no path
        folder = Path(__file__).resolve().parent / "datasets" / "mnist-sample"
    return folder


# ---------------------------------------------------------------------------
# User .npz files


def _npy_header(
    zf: zipfile.ZipFile, member: str, path: Path, key: str
) -> tuple[IO[bytes], tuple[int, ...], bool, np.dtype]:
    """Open ``member`` of ``zf`` positioned at the array data; also its shape, order and dtype."""
    f = zf.open(member)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise DataError(f"{path}: {key} is stored in unsupported .npy format version {version}")
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{path}: {key} has dtype {dtype}, expected a plain numeric array")
    return f, shape, fortran, dtype


def _npy_rows(
    f: IO[bytes], shape: tuple, fortran: bool, dtype: np.dtype, start: int, stop: int, where: str
) -> np.ndarray:
    """Rows ``start:stop`` of the array whose data ``f`` is positioned at, read-only, in its stored dtype."""
    row = int(np.prod(shape[1:], dtype=np.int64))
    row_bytes = row * dtype.itemsize
    if fortran and len(shape) > 1 and shape[0] > 1:
        # Column-major rows are scattered through the file: read it all.
        want = shape[0] * row_bytes
        buf = _read_exact(f, want)
        if len(buf) < want:
            raise DataError(f"{where}: truncated array data")
        return np.frombuffer(buf, dtype).reshape(shape, order="F")[start:stop]
    f.seek(start * row_bytes, os.SEEK_CUR)
    want = (stop - start) * row_bytes
    buf = _read_exact(f, want)
    if len(buf) < want:
        raise DataError(f"{where}: truncated array data")
    return np.frombuffer(buf, dtype).reshape((stop - start, *shape[1:]))


def _task_of(y: np.ndarray, task: str) -> str:
    """``task``, or for ``"auto"`` the task the training targets ``y`` mean:
    regression for 2-D targets or real values that are not all integers,
    classification for integer labels (of any numeric dtype)."""
    if task != "auto":
        return task
    if y.ndim == 2:
        return "regression"
    finite = y[np.isfinite(y)] if y.dtype.kind == "f" else y
    if y.dtype.kind == "f" and np.any(finite != np.round(finite)):
        return "regression"
    return "classification"


def _targets(y: np.ndarray, where: str, task: str, dtype: np.dtype) -> np.ndarray:
    """Labels (:func:`_check_labels`) or, for regression, finite real targets in ``dtype``."""
    if task == "classification":
        if y.ndim != 1:
            raise DataError(f"{where}: class labels must be 1-D, got shape {y.shape}")
        return _check_labels(y, where)
    if y.dtype.kind not in "iuf":
        raise DataError(f"{where}: targets have dtype {y.dtype}, expected real numbers")
    bad = ~np.isfinite(y)
    if bad.any():
        row = int(np.argmax(bad.reshape(len(y), -1).any(axis=1)))
        raise DataError(f"{where}: targets contain NaN or inf (row {row})")
    return np.ascontiguousarray(y, dtype=dtype)


def _check_labels(y: np.ndarray, where: str) -> np.ndarray:
    """``y`` as int64 after checking the values are integers ``>= 0``."""
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where}: labels must be integers, found {y[i]} at index {i}")
    elif y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels have dtype {y.dtype}, expected integers")
    if y.size and y.min() < 0:
        i = int(np.argmax(y < 0))
        raise DataError(f"{where}: labels must be >= 0, found {y[i]} at index {i}")
    if y.size and y.max() > np.iinfo(np.int64).max:
        raise DataError(f"{where}: label {y.max()} does not fit in int64")
    return y.astype(np.int64)


def _to_features(block: np.ndarray, dtype: np.dtype, where: str, offset: int) -> np.ndarray:
    """``block`` as a C-contiguous ``dtype`` copy, refusing non-finite values (global row in the message)."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        X = np.array(block, dtype=dtype, order="C")
    finite = np.isfinite(X)
    if not finite.all():
        i, j = (int(v) for v in np.argwhere(~finite)[0])
        value = block[i, j]
        if np.isfinite(value):
            problem = f"value {value} overflows {dtype}"
        else:
            problem = f"non-finite value {'NaN' if np.isnan(value) else 'inf'}"
        raise DataError(f"{where}: {problem} at row {offset + i}, column {j}")
    return X


#: The arrays of a user file, in reading order; ``names`` maps them to the file's own names.
ARRAY_KEYS = ("X_train", "y_train", "X_test", "y_test")


@dataclass
class _Stored:
    """One array of a user file: shape, stored dtype, and a reader of rows ``a:b`` (stored dtype)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    rows: Callable[[int, int], np.ndarray]
    #: How many rows to convert at a time (bounds the float copy of a stored block).
    chunk_rows: int


@dataclass
class _UserFile:
    """A ``.npz`` or HDF5 file as :func:`_read_arrays` sees it."""

    path: Path
    kind: str  # "array" (.npz) or "dataset" (HDF5), for the messages
    found: list[str]
    contains: Callable[[str], bool]
    open: Callable[[str, str], _Stored]  # (name in the file, what to call it in messages)


def _array_names(names: Mapping[str, str] | None) -> dict[str, str]:
    """``names`` completed with the default names; refuses keys other than :data:`ARRAY_KEYS`."""
    names = dict(names or {})
    unknown = sorted(set(names) - set(ARRAY_KEYS))
    if unknown:
        raise ValueError(f"names: unknown keys {unknown}, expected some of {list(ARRAY_KEYS)}")
    return {key: str(names.get(key, key)) for key in ARRAY_KEYS}


@contextlib.contextmanager
def _unreadable(path: Path, what: str, errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Turn the ``errors`` of a reader (not a :class:`DataError`) into one-line DataErrors."""
    try:
        yield
    except DataError:
        raise
    except errors as exc:
        raise DataError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from None


def _load_npz(
    path: Path,
    rank: int,
    size: int,
    dtype: np.dtype,
    block: int,
    names: dict[str, str],
    train: bool = True,
    task: str = "auto",
) -> Dataset:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    # A damaged archive fails in zipfile, zlib or numpy's header parser.
    errors = (
        OSError,
        EOFError,
        ValueError,
        zlib.error,
        zipfile.BadZipFile,
        NotImplementedError,
        RuntimeError,
        struct.error,
        OverflowError,
    )
    with _unreadable(path, ".npz file", errors):
        with zipfile.ZipFile(path) as zf, contextlib.ExitStack() as stack:
            members = {n[: -len(".npy")]: n for n in zf.namelist() if n.endswith(".npy")}

            def open_member(name: str, label: str) -> _Stored:
                f, shape, fortran, stored = _npy_header(zf, members[name], path, label)
                stack.enter_context(f)
                where = f"{path}: {label}"

                def rows(a: int, b: int) -> np.ndarray:
                    return _npy_rows(f, shape, fortran, stored, a, b, where)

                return _Stored(shape, stored, rows, max(shape[0], 1) if shape else 1)

            source = _UserFile(path, "array", sorted(members), members.__contains__, open_member)
            dataset = _read_arrays(source, rank, size, dtype, block, names, train, task)
    return dataset


def _load_hdf5(
    path: Path,
    rank: int,
    size: int,
    dtype: np.dtype,
    block: int,
    names: dict[str, str],
    train: bool = True,
    task: str = "auto",
) -> Dataset:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        import h5py
    except ImportError:
        raise DataError(
            f"{path}: reading HDF5 files needs h5py: pip install 'admm[hdf5]'"
        ) from None
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file")
    # h5py reports damaged files, unreadable chunks and unsupported types so.
    errors = (OSError, ValueError, KeyError, TypeError, RuntimeError)
    with _unreadable(path, "HDF5 file", errors):
        with h5py.File(path, "r") as f:
            found: list[str] = []
            f.visititems(lambda name, obj: found.append(name) if hasattr(obj, "dtype") else None)

            def open_dataset(name: str, label: str) -> _Stored:
                obj = f[name]
                if not isinstance(obj, h5py.Dataset):
                    raise DataError(f"{path}: {label} is a group, expected a dataset")
                stored = obj.dtype
                if stored.hasobject or stored.fields is not None or stored.subdtype is not None:
                    raise DataError(
                        f"{path}: {label} has dtype {stored}, expected a plain numeric array"
                    )
                shape = tuple(obj.shape or ())
                row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * stored.itemsize
                # Only this rank's rows are read, a hyperslab of about _CHUNK bytes at a time.
                return _Stored(
                    shape, stored, lambda a, b: obj[a:b], max(_CHUNK // max(row_bytes, 1), 1)
                )

            source = _UserFile(path, "dataset", found, f.__contains__, open_dataset)
            dataset = _read_arrays(source, rank, size, dtype, block, names, train, task)
    return dataset


def _read_arrays(
    source: _UserFile,
    rank: int,
    size: int,
    dtype: np.dtype,
    block: int,
    names: dict[str, str],
    train: bool = True,
    task: str = "auto",
) -> Dataset:
    """This rank's rows of the arrays of a user file, with every check of the data
    (local); without ``train``, no row of ``X_train``. ``task``: ``"auto"``
    (:func:`_task_of`), ``"classification"`` or ``"regression"``."""
    path, kind = source.path, source.kind

    def label(key: str) -> str:
        return key if names[key] == key else f"{names[key]} ({key})"

    for key in ("X_train", "y_train"):
        if not source.contains(names[key]):
            found = ", ".join(source.found) or "none"
            raise DataError(
                f"{path}: missing {kind} {label(key)} (found: {found}; "
                "expected X_train, y_train and optionally X_test, y_test)"
            )
    with_test = source.contains(names["X_test"])
    if with_test != source.contains(names["y_test"]):
        raise DataError(f"{path}: {label('X_test')} and {label('y_test')} must be given together")
    keys = ARRAY_KEYS if with_test else ARRAY_KEYS[:2]
    head = {}
    for key in keys:
        arr = source.open(names[key], label(key))
        head[key] = arr
        want_ndim = (2,) if key[0] == "X" else (1, 2)  # 2-D targets: regression
        if len(arr.shape) not in want_ndim:
            expected = "(m, n_features)" if key[0] == "X" else "(m,) or (m, n_targets)"
            raise DataError(f"{path}: {label(key)} has shape {arr.shape}, expected {expected}")
        if key[0] == "X" and arr.dtype.kind not in "biuf":
            raise DataError(f"{path}: {label(key)} has dtype {arr.dtype}, expected real numbers")
        if key[0] == "y" and arr.dtype.kind not in "iuf":
            raise DataError(f"{path}: {label(key)} has dtype {arr.dtype}, expected integer labels")
    n_features = head["X_train"].shape[1]
    if head["X_train"].shape[0] == 0 or n_features == 0:
        raise DataError(f"{path}: {label('X_train')} is empty (shape {head['X_train'].shape})")
    blocks = {}
    for split in ("train", "test") if with_test else ("train",):
        X_key, y_key = f"X_{split}", f"y_{split}"
        X_arr, y_arr = head[X_key], head[y_key]
        if X_arr.shape[0] != y_arr.shape[0]:
            raise DataError(
                f"{path}: {label(X_key)} has {X_arr.shape[0]} rows but {label(y_key)} has "
                f"{y_arr.shape[0]} labels"
            )
        if X_arr.shape[1] != n_features:
            raise DataError(
                f"{path}: {label(X_key)} has {X_arr.shape[1]} features but {label('X_train')} "
                f"has {n_features}"
            )
        m = X_arr.shape[0]
        raw = y_arr.rows(0, m)
        task = _task_of(raw, task)  # decided by the training targets, which come first
        y = _targets(raw, f"{path}: {label(y_key)}", task, dtype)
        start, stop = block_range(m, rank, size, block) if train or split == "test" else (0, 0)
        X = _features(X_arr, start, stop, dtype, f"{path}: {label(X_key)}")
        blocks[split] = (X, y[start:stop], y, (start, stop))
    if task == "regression":
        return _regression_dataset(path, blocks, n_features, label("y_test"))
    X_train, y_train, labels_train, train_range = blocks["train"]
    X_test, y_test, labels_test, _ = blocks.get("test", (None, None, labels_train[:0], None))
    return Dataset(
        name=str(path),
        source=str(path),
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        n_train=len(labels_train),
        n_test=len(labels_test),
        n_features=n_features,
        n_classes=int(max(labels_train.max(), labels_test.max(initial=0))) + 1,
        train_range=train_range,
    )


def _regression_dataset(
    path: Path, blocks: dict[str, tuple], n_features: int, test_label: str
) -> Dataset:
    """The :class:`Dataset` of real targets from :func:`_read_arrays`'s blocks."""
    X_train, y_train, targets_train, train_range = blocks["train"]
    X_test, y_test, targets_test, _ = blocks.get("test", (None, None, targets_train[:0], None))
    n_targets = 1 if targets_train.ndim == 1 else targets_train.shape[1]
    if targets_test.size and targets_test.shape[1:] != targets_train.shape[1:]:
        raise DataError(
            f"{path}: {test_label} has shape {targets_test.shape}, the training "
            f"targets {targets_train.shape}"
        )
    return Dataset(
        name=str(path),
        source=str(path),
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        n_train=len(targets_train),
        n_test=len(targets_test),
        n_features=n_features,
        n_classes=0,
        train_range=train_range,
        task="regression",
        n_targets=n_targets,
    )


def _features(arr: _Stored, start: int, stop: int, dtype: np.dtype, where: str) -> np.ndarray:
    """Rows ``start:stop`` of ``arr`` as ``dtype``, read and converted ``chunk_rows`` at a time."""
    if stop - start <= arr.chunk_rows:
        return _to_features(arr.rows(start, stop), dtype, where, start)
    X = np.empty((stop - start, arr.shape[1]), dtype=dtype)
    for a in range(start, stop, arr.chunk_rows):
        b = min(a + arr.chunk_rows, stop)
        X[a - start : b - start] = _to_features(arr.rows(a, b), dtype, where, a)
    return X


# ---------------------------------------------------------------------------


def load_dataset(
    data: str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    rank: int = 0,
    size: int = 1,
    dtype="float64",
    download: bool = True,
    block: int = 1,
    names: Mapping[str, str] | None = None,
    train: bool = True,
    task: str = "auto",
) -> Dataset:
    """Load this rank's block of a data set (local: no MPI; call it on every rank).

    ``data``:

    - ``None``: full MNIST when its files are found locally (``data_dir``,
      ``$ADMM_DATA_DIR``, the cache folder; never downloaded), otherwise the
      embedded sample, with ``source`` saying so and where MNIST was looked for;
    - ``"mnist"`` / ``"fashion-mnist"``: the IDX files from the first folder of
      :func:`search_folders` holding all four, else downloaded into the cache
      when ``download`` (verified, see the module docstring);
    - ``"mnist-sample"``: the embedded sample (:data:`SAMPLE_DESCRIPTION`);
    - a path ending in ``.npz`` holding ``X_train (m, n_0)``, ``y_train (m,)``
      and optionally ``X_test``, ``y_test``: X any real dtype, finite; labels
      integers >= 0. Values are converted to ``dtype``, not scaled;
    - a path ending in ``.h5`` or ``.hdf5``: the same arrays as HDF5 datasets
      (needs h5py, the ``hdf5`` extra), any float or integer dtype. Each rank
      reads only its own rows (hyperslabs of a few MB, converted one at a time)
      and all the labels.

    ``names`` maps ``"X_train"``, ``"y_train"``, ``"X_test"``, ``"y_test"`` to
    the names the arrays have in a ``.npz`` or HDF5 file (HDF5 paths such as
    ``"train/images"`` work); keys left out keep their own name.

    Each rank keeps rows :func:`block_range` ``(n, rank, size, block)`` of the
    training and of the test set as C-contiguous ``dtype`` (float32 or
    float64) arrays; IDX pixels are scaled to [0, 1]. ``block > 1`` deals out
    whole blocks of ``block`` samples, as ``ADMMNetwork(deterministic=True,
    block_size=block)`` needs. ``train=False`` reads no training samples
    (``X_train`` has no rows; the training labels are still read, for the
    number of classes): what a test evaluation needs. ``task``: a user file's
    ``y_train`` holds class labels or real targets (regression, ``(m,)`` or
    ``(m, n_targets)``); ``"auto"`` (default) reads real values that are not
    all integers, or 2-D targets, as regression. Raises :class:`DataError`
    for every problem with the files or the data.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    block_range(0, rank, size, block)  # validates rank, size and block
    array_names = _array_names(names)
    if data is None:
        looked = []
        for folder in search_folders("mnist", data_dir):
            state = _folder_state(folder)
            if state is None:
                return _load_idx_folder(
                    "mnist", folder, rank, size, dtype, str(folder), block, train
                )
            looked.append(str(folder))
        dataset = _load_idx_folder(
            "mnist-sample", _sample_folder(), rank, size, dtype, "embedded sample", block, train
        )
        dataset.source = (
            f"embedded sample ({SAMPLE_DESCRIPTION}): full MNIST was not found in "
            f"{', '.join(looked)}; use --data mnist to download it, or put its four IDX "
            "files in one of those folders, in --data-dir DIR or in $ADMM_DATA_DIR"
        )
        return dataset
    if data in ("mnist", "fashion-mnist"):
        folder = locate(data, data_dir, download)
        return _load_idx_folder(data, folder, rank, size, dtype, str(folder), block, train)
    if data == "mnist-sample":
        folder = _sample_folder()
        return _load_idx_folder(
            data,
            folder,
            rank,
            size,
            dtype,
            f"embedded sample ({SAMPLE_DESCRIPTION})",
            block,
            train,
        )
    if str(data).endswith(".npz"):
        return _load_npz(Path(data), rank, size, dtype, block, array_names, train, task)
    if str(data).endswith((".h5", ".hdf5")):
        return _load_hdf5(Path(data), rank, size, dtype, block, array_names, train, task)
    raise DataError(
        f"unknown data {data!r}: expected one of {', '.join(BUILTIN)} or a path ending in "
        ".npz, .h5 or .hdf5"
    )
