"""Regenerate the embedded MNIST sample in python/admm/datasets/mnist-sample.

The sample is the first 6000 training and the first 1000 test images (and
labels) of MNIST, stored as gzip IDX files like the originals. The source
files are verified against their SHA256 before use; the script prints the
SHA256 of each uncompressed sample file, which ``admm.data.SAMPLE_SHA256``
must hold. The gzip bytes are reproducible for one zlib (no name, mtime 0).

    python tools/make_mnist_sample.py [--mnist DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

from admm.data import (
    IDX_FILES,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    MNIST_SHA256,
    _find_file,
    read_idx,
)

REPO = Path(__file__).resolve().parent.parent
SIZES = {"train": 6000, "t10k": 1000}


def make_sample(mnist: Path, out: Path) -> dict[str, str]:
    """Write the sample's four gzip IDX files into ``out``; return their uncompressed SHA256."""
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for stem in IDX_FILES:
        magic = IMAGES_MAGIC if "images" in stem else LABELS_MAGIC
        source = _find_file(mnist, stem)
        if source is None:
            raise SystemExit(f"{mnist / stem}[.gz] not found")
        count = SIZES[stem.split("-")[0]]
        block = read_idx(source, magic, 0, count, sha256=MNIST_SHA256[stem])
        header = magic.to_bytes(4, "big") + b"".join(
            d.to_bytes(4, "big") for d in (count, *block.dims[1:])
        )
        content = header + block.data.tobytes()
        with open(out / f"{stem}.gz", "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
                f.write(content)
        digests[stem] = hashlib.sha256(content).hexdigest()
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    parser.add_argument(
        "--out", type=Path, default=REPO / "python" / "admm" / "datasets" / "mnist-sample"
    )
    args = parser.parse_args()
    for stem, digest in make_sample(args.mnist, args.out).items():
        print(f"{digest}  {stem}")


if __name__ == "__main__":
    main()
