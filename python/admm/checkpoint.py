"""Crash-safe checkpoints of the full ADMM state, one file per rank.

A checkpoint of iteration ``t`` in folder ``D`` is

- ``D/state-it{t:08d}-rank{r:05d}.npz`` for every rank ``r``: that rank's
  weights (identical on all ranks), activations ``a_l``, outputs ``z_l``,
  multiplier ``lam``, iteration count, ridge and training clock;
- ``D/manifest.json``, written last: the format version, the iteration, the
  number of ranks, the run configuration, the history of the run so far and,
  per rank, the file name, its SHA-256 and a description of that rank's data
  block.

Writing order makes a crash harmless: every rank writes its file under a
temporary name and renames it; the ranks agree that all files are in place;
rank 0 then replaces the manifest atomically; only after that are files of
older iterations removed. A reader trusts nothing the manifest does not
vouch for: it checks the format version, the number of ranks, the
configuration, this rank's data and the checksum of each file. There is no
random state to keep: the network draws random numbers only for its initial
weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from typing import Any

import numpy as np

from ._files import atomic_savez, atomic_write_text, unwritable_reason
from ._mpi import Communicator
from .config import run_config_differences
from .storage import array_sha256, file_sha256, read_npz

__all__ = [
    "CheckpointError",
    "array_sha256",
    "check_writable_dir",
    "load_checkpoint",
    "read_manifest",
    "save_checkpoint",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

_STATE_FILE = re.compile(r"^state-it(\d+)-rank(\d+)\.npz$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be written, found or trusted."""


def state_file_name(iteration: int, rank: int) -> str:
    """File name of ``rank``'s state at ``iteration``."""
    return f"state-it{iteration:08d}-rank{rank:05d}.npz"


def check_writable_dir(directory: str | os.PathLike) -> str | None:
    """Create ``directory`` if needed and write a probe file in it. Local.

    Returns a message saying what is wrong, or None when files can be written.
    """
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        return f"cannot write to checkpoint folder {directory}: {exc.strerror or exc}"
    reason = unwritable_reason(directory)
    return reason and f"cannot write to checkpoint folder {directory}: {reason}"


def save_checkpoint(
    directory: str | os.PathLike,
    comm: Communicator,
    state: dict[str, Any],
    config: dict[str, Any],
    rank_info: dict[str, Any],
) -> str:
    """Write every rank's ``state`` and then the manifest. Collective on ``comm``.

    ``state`` is :meth:`ADMMNetwork.get_state` of this rank; ``config`` a
    JSON-able description of the run that must be the same on every rank and
    equal at resume (network parameters, data set); ``rank_info`` a JSON-able
    description of this rank's data block, checked at resume. Returns the
    manifest's path. Raises :class:`CheckpointError` on every rank when any
    rank fails to write, or holds NaN or inf in its state (nothing is written
    then, so the previous checkpoint stays the one the manifest names).
    """
    directory = os.fspath(directory)
    iteration = int(state["n_iter"])
    name = state_file_name(iteration, comm.rank)
    path = os.path.join(directory, name)

    def write_rank_file() -> str:
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
            "rank": np.array(comm.rank),
            "ranks": np.array(comm.size),
            "n_iter": np.array(iteration),
            "elapsed": np.array(float(state["elapsed"])),
            "rho": np.array(state["rho"], dtype=np.float64),
        }
        for kind in ("weights", "a", "z"):
            for i, v in enumerate(state[kind]):
                arrays[f"{kind}{i + 1}"] = v
        arrays["lam"] = state["lam"]
        if state.get("input_mean") is not None:
            arrays["input_mean"] = np.asarray(state["input_mean"], dtype=np.float64)
        if state.get("input_basis") is not None:
            arrays["input_basis"] = np.asarray(state["input_basis"], dtype=np.float64)
        bad = [k for k, v in arrays.items() if not np.all(np.isfinite(v))]
        if bad:
            # Never replace the last good checkpoint by one that cannot be resumed.
            raise CheckpointError(
                f"refusing to checkpoint iteration {iteration}: {', '.join(bad)} "
                "contain NaN or inf"
            )
        try:
            atomic_savez(path, arrays)
            return file_sha256(path)
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint file {path}: {exc}") from None

    sha = comm.agreed(write_rank_file, CheckpointError)
    entries = comm.agree({"rank": comm.rank, "file": name, "sha256": sha, "data": rank_info})
    manifest_path = os.path.join(directory, MANIFEST)

    def write_manifest() -> None:
        if comm.rank != 0:
            return
        manifest = {
            "format": "admm-checkpoint",
            "format_version": FORMAT_VERSION,
            "iteration": iteration,
            "ranks": comm.size,
            "config": config,
            "rho": list(state["rho"]),
            "elapsed_s": float(state["elapsed"]),
            "files": entries,
            "history": state["history"],
        }
        try:
            atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
        except (OSError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"cannot write checkpoint manifest {manifest_path}: {exc}"
            ) from None

    # Also the barrier that keeps older files until the new manifest is in place.
    comm.agreed(write_manifest, CheckpointError)
    _remove_stale(directory, comm, iteration)
    return manifest_path


def _remove_stale(directory: str, comm: Communicator, iteration: int) -> None:
    """Remove this rank's state files of other iterations (rank 0: also of
    ranks beyond the job's size, left by an earlier job). Local."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for entry in names:
        match = _STATE_FILE.match(entry)
        if match is None:
            continue
        it, rank = int(match.group(1)), int(match.group(2))
        mine = rank == comm.rank or (comm.rank == 0 and rank >= comm.size)
        if mine and (it != iteration or rank >= comm.size):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of the checkpoint in ``directory``. Local.

    Raises :class:`CheckpointError` when it is missing, unreadable or of
    another format version.
    """
    path = os.path.join(os.fspath(directory), MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(
            f"no checkpoint in {os.fspath(directory)} ({MANIFEST} not found)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint manifest {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "admm-checkpoint":
        raise CheckpointError(f"{path} is not an admm checkpoint manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}; this admm reads {FORMAT_VERSION}"
        )
    keys = {"iteration", "ranks", "config", "files", "history", "rho"}
    missing = keys - set(manifest)
    if missing:
        raise CheckpointError(f"{path} is incomplete: missing {sorted(missing)}")
    return manifest


def _read_rank_state(
    directory: str, manifest: dict[str, Any], rank: int, size: int, rank_info: dict[str, Any]
) -> dict[str, Any]:
    """This rank's verified state from the checkpoint. Local."""
    entries = manifest["files"]
    if not isinstance(entries, list) or len(entries) != size:
        raise CheckpointError(f"the manifest in {directory} lists a wrong number of rank files")
    entry = entries[rank]
    if entry.get("data") != rank_info:
        raise CheckpointError(
            f"rank {rank}'s training block differs from the checkpoint's "
            f"(checkpoint {entry.get('data')!r}, now {rank_info!r}): resume needs the "
            "same data and number of ranks"
        )
    name = str(entry.get("file", ""))
    if _STATE_FILE.match(name) is None:
        raise CheckpointError(f"the manifest in {directory} names an invalid file {name!r}")
    path = os.path.join(directory, name)
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint file {path}: {exc}") from None
    if sha != entry.get("sha256"):
        raise CheckpointError(
            f"checkpoint file {path} is corrupt (SHA-256 {sha} differs from the manifest's)"
        )
    try:
        data = read_npz(path)
    except ValueError as exc:
        raise CheckpointError(f"cannot read checkpoint file {path}: {exc}") from None

    def series(kind: str) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        while f"{kind}{len(out) + 1}" in data:
            out.append(data[f"{kind}{len(out) + 1}"])
        return out

    try:
        if (
            int(data["format_version"]) != FORMAT_VERSION
            or int(data["rank"]) != rank
            or int(data["ranks"]) != size
            or int(data["n_iter"]) != int(manifest["iteration"])
        ):
            raise CheckpointError(f"checkpoint file {path} does not match its manifest")
        return {
            "weights": series("weights"),
            "a": series("a"),
            "z": series("z"),
            "lam": data["lam"],
            "n_iter": int(data["n_iter"]),
            "rho": tuple(float(r) for r in data["rho"]),
            "elapsed": float(data["elapsed"]),
            "history": list(manifest["history"]),
            "input_mean": data["input_mean"] if "input_mean" in data else None,
            "input_basis": data["input_basis"] if "input_basis" in data else None,
        }
    except KeyError as exc:
        raise CheckpointError(f"checkpoint file {path} lacks array {exc}") from None


def load_checkpoint(
    directory: str | os.PathLike,
    comm: Communicator,
    config: dict[str, Any],
    rank_info: dict[str, Any],
) -> dict[str, Any]:
    """This rank's state from the checkpoint in ``directory``. Collective on ``comm``.

    Checks the manifest (format version, number of ranks, ``config``, this
    rank's ``rank_info``) and the SHA-256 of this rank's file. Returns a
    dictionary for :meth:`ADMMNetwork.set_state`. Raises
    :class:`CheckpointError` on every rank when any rank finds a problem.
    """
    directory = os.fspath(directory)

    def read_rank_state() -> dict[str, Any]:
        manifest = read_manifest(directory)
        if manifest["ranks"] != comm.size:
            raise CheckpointError(
                f"the checkpoint in {directory} was written by {manifest['ranks']} ranks; "
                f"resume it with the same number (this job has {comm.size})"
            )
        differences = run_config_differences(manifest["config"], config)
        if differences:
            raise CheckpointError(
                f"the checkpoint in {directory} belongs to another run: " + "; ".join(differences)
            )
        return _read_rank_state(directory, manifest, comm.rank, comm.size, rank_info)

    return comm.agreed(read_rank_state, CheckpointError)
