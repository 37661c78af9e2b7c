"""Files of models and checkpoints: checksums, reading ``.npz`` safely, the model format.

Shared by :meth:`admm.ADMMNetwork.save` / :func:`admm.load` (model files) and
:mod:`admm.checkpoint` (one state file per rank). Every function is local.

A model file is an uncompressed ``.npz`` with ``format_version``, ``layers``,
the options of :class:`admm.config.Config` that a model keeps (by their own
names; :meth:`Config.to_model_arrays`), ``rho`` (the ridges used, ``rho_``),
``n_iter``, ``input_mean`` (empty unless centred), ``input_basis`` (only
with ``spectral_power``), the weights ``W1`` .. ``WL`` and ``sha256``, a
checksum of all the other arrays.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._files import atomic_savez
from .config import Config

#: Model files: version 2 adds ``sha256``, a checksum of all other arrays
#: (names, dtypes, shapes and bytes); version 3 the continuation, multiplier,
#: relative ridge and ``input_mean`` (a reader of version 2 would predict a
#: centred model wrongly); version 4 ``deskew`` (a reader of version 3 would
#: predict a deskewed model on raw images); version 5 ``input_power``,
#: ``normalize_inputs``, ``spectral_power`` and ``input_basis``, written only
#: by a model that uses one of them (a reader of version 4 would predict it
#: on untransformed inputs; any other model is still a version 4 file, as an
#: older admm wrote it). Versions 1 to 4 are still read: an option a file
#: lacks takes its ``legacy`` value of the table.
MODEL_FORMAT_VERSION = 5
MODEL_VERSIONS_READ = (1, 2, 3, 4, 5)


def model_format_version(config: Config) -> int:
    """The format version of a model file of ``config``: 5 when it transforms
    its inputs in a way version 4 cannot record, else 4."""
    transformed = config.input_power != 1.0 or config.normalize_inputs or config.spectral_power
    return MODEL_FORMAT_VERSION if transformed else 4


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def array_sha256(*arrays: np.ndarray) -> str:
    """Hex SHA-256 of the shapes, dtypes and bytes of ``arrays``.

    Identifies a rank's data block, so a resumed run can refuse other data.
    """
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.data)
    return digest.hexdigest()


def arrays_sha256(arrays: Mapping[str, Any]) -> str:
    """Hex SHA-256 of named arrays: names, dtypes, shapes and bytes, by name."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{a.dtype.str}{a.shape}:".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (no pickles); ``OSError``/``ValueError``
    from NumPy or zipfile are raised as ``ValueError`` naming the file."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{os.fspath(path)} is not readable: {exc}") from None


def write_model(
    path: str | os.PathLike,
    layers: Sequence[int],
    config: Config,
    weights: Sequence[np.ndarray],
    rho: Sequence[float] | None,
    n_iter: int,
    input_mean: np.ndarray | None,
    input_basis: np.ndarray | None = None,
) -> None:
    """Write a model file (atomically: a temporary name, then a rename)."""
    arrays: dict[str, Any] = {
        "format_version": np.array(model_format_version(config)),
        "layers": np.array(tuple(layers), dtype=np.int64),
        **config.to_model_arrays(len(layers) - 1),
        "rho": np.array(tuple(rho) if rho is not None else (), dtype=np.float64),
        "n_iter": np.array(n_iter),
        "input_mean": np.array(input_mean if input_mean is not None else [], dtype=np.float64),
    }
    if input_basis is not None:
        arrays["input_basis"] = np.asarray(input_basis, dtype=np.float64)
    for i, w in enumerate(weights):
        arrays[f"W{i + 1}"] = w
    arrays["sha256"] = np.array(arrays_sha256(arrays))
    atomic_savez(path, arrays)


def read_model(path: str | os.PathLike) -> dict[str, Any]:
    """The checked contents of a model file: ``layers`` (tuple), ``config``
    (:class:`Config`), ``weights`` (list), ``rho`` (tuple or None),
    ``n_iter``, ``input_mean`` (float64 ``(n_0,)`` or None) and
    ``input_basis`` (float64 ``(n_0, n_0)`` or None).

    Raises ``ValueError`` naming the problem when the file is not an admm
    model (missing arrays, an unknown format version, a checksum that does
    not match, inconsistent shapes).
    """
    name = os.fspath(path)
    try:
        data = read_npz(path)
    except ValueError as exc:
        raise ValueError(f"{name} is not a readable admm model: {exc}") from None
    missing = {"format_version", "layers", "activation", "loss", "beta", "gamma", "dtype"} - set(
        data
    )
    if missing:
        raise ValueError(f"{name} is not an admm model: missing {sorted(missing)}")
    version = int(data["format_version"])
    if version not in MODEL_VERSIONS_READ:
        raise ValueError(
            f"{name} has model format {version}; this admm reads "
            f"{', '.join(map(str, MODEL_VERSIONS_READ))}"
        )
    if version >= 2:
        if "sha256" not in data:
            raise ValueError(f"{name} is not an admm model: missing ['sha256']")
        saved = str(data.pop("sha256"))
        if arrays_sha256(data) != saved:
            raise ValueError(
                f"{name} is corrupt: its arrays do not match the checksum "
                "written with them (a damaged or edited model file)"
            )
    layers = tuple(int(n) for n in data["layers"])
    weights = []
    for i in range(len(layers) - 1):
        key = f"W{i + 1}"
        if key not in data:
            raise ValueError(f"{name} is not an admm model: missing {key}")
        weights.append(data[key])
    rho = tuple(data["rho"].tolist()) if "rho" in data and data["rho"].size else None
    mean = None
    if "input_mean" in data and data["input_mean"].size > 0:
        mean = np.asarray(data["input_mean"], dtype=np.float64)
        if mean.shape != (layers[0],):
            raise ValueError(
                f"{name} is not an admm model: input_mean has shape {mean.shape}, "
                f"expected {(layers[0],)}"
            )
    config = Config.from_model_arrays(data, rho=rho, center=mean is not None)
    basis = None
    if config.spectral_power:
        n0 = layers[0]
        shape = data["input_basis"].shape if "input_basis" in data else None
        if shape != (n0, n0):
            raise ValueError(
                f"{name} is not an admm model: spectral_power needs an input_basis of shape "
                f"{(n0, n0)}, got {shape}"
            )
        basis = np.asarray(data["input_basis"], dtype=np.float64)
    return {
        "layers": layers,
        "config": config,
        "weights": weights,
        "rho": rho,
        "n_iter": int(data.get("n_iter", 0)),
        "input_mean": mean,
        "input_basis": basis,
    }
