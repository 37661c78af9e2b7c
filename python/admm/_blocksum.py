"""Sums over samples whose rounding does not depend on how the samples are split.

The samples of all ranks, in rank order, are numbered globally and cut into
blocks of ``block_size`` consecutive samples (the last block may be shorter).
A sum over samples is formed per block (one BLAS call or kernel call on the
block's rows, which sees only that block) and the ``B`` block sums are added
along one fixed binary tree over the block indices: node ``(k, j)`` covers
blocks ``[j 2^k, (j + 1) 2^k)`` (cut at ``B``) and its value is
``value(k - 1, 2j) + value(k - 1, 2j + 1)``, or just the left child's value
when the right child starts at or past ``B``. Every floating-point addition is
therefore fixed by ``B`` alone, whatever the number of ranks and however the
blocks are dealt out, as long as every rank holds whole blocks.

Each rank adds the nodes that lie inside its own blocks. A node that spans
several ranks is added by the rank holding its first block, which receives
its right child from the rank holding that child's first block (only later
ranks ever send to earlier ones, so nothing can deadlock). The rank holding
block 0 ends with the root and broadcasts it. Per call a rank sends at most
one buffer per tree level and usually one or two; see ``docs/determinism.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._mpi import Communicator
from .timing import phase

#: Leaf function: ``leaf(block, out)`` writes block ``block``'s sum (global
#: block index) into the 1-D buffer ``out``.
Leaf = Callable[[int, np.ndarray], object]


class BlockLayout:
    """Which global blocks of ``block_size`` samples each rank holds.

    ``counts`` are the samples per rank in rank order (the same list on every
    rank); rank ``r``'s samples are global samples
    ``offsets[r] .. offsets[r] + counts[r] - 1``. Local: no communication.
    """

    def __init__(self, counts: list[int], rank: int, block_size: int) -> None:
        self.block_size = int(block_size)
        self.counts = [int(c) for c in counts]
        self.rank = rank
        self.offsets = [0]
        for c in self.counts[:-1]:
            self.offsets.append(self.offsets[-1] + c)
        self.total = sum(self.counts)
        self.n_blocks = -(-self.total // self.block_size)
        # Block range [first, stop) of every rank (empty ranks: an empty range).
        self.ranges = []
        for off, c in zip(self.offsets, self.counts, strict=True):
            first = off // self.block_size
            self.ranges.append((first, first + -(-c // self.block_size) if c else first))
        self.first, self.stop = self.ranges[rank]

    def misaligned(self) -> str | None:
        """Why the split does not hold whole blocks, or None when it does."""
        bs = self.block_size
        for r, (off, c) in enumerate(zip(self.offsets, self.counts, strict=True)):
            if c == 0:
                continue
            end = off + c
            if off % bs or (end % bs and end != self.total):
                return (
                    f"deterministic training needs every rank to hold whole blocks of "
                    f"block_size={bs} consecutive samples (only the last block of all "
                    f"{self.total} may be shorter), but rank {r} holds global samples "
                    f"{off}..{end - 1}; split with admm.data.block_range(n, rank, size, "
                    f"block={bs}), or pass deterministic=False"
                )
        return None

    def local_blocks(self) -> list[tuple[int, slice]]:
        """This rank's blocks: ``(global block index, local row slice)`` pairs."""
        bs, off = self.block_size, self.offsets[self.rank]
        out = []
        for b in range(self.first, self.stop):
            start = b * bs - off
            out.append((b, slice(start, min(start + bs, self.counts[self.rank]))))
        return out

    def owner(self, block: int) -> int:
        """The rank holding global block ``block``."""
        for r, (first, stop) in enumerate(self.ranges):
            if first <= block < stop:
                return r
        raise ValueError(f"block {block} is held by no rank")


class TreeSum:
    """Sums of per-block buffers along the fixed tree of :class:`BlockLayout`.

    Scratch space, one buffer per tree level plus one per buffer this rank
    sends (``O(log B)`` buffers), is kept between calls and shared by calls of
    every size: it grows to the largest buffer summed.
    """

    def __init__(self, layout: BlockLayout, comm: Communicator) -> None:
        self.layout = layout
        self.comm = comm
        self.levels = max(layout.n_blocks - 1, 0).bit_length()  # root: node (levels, 0)
        self._sends = self._send_nodes()
        self._scratch: dict[object, np.ndarray] = {}
        self._leaf: Leaf | None = None
        self._out_like: np.ndarray | None = None

    def __call__(self, leaf: Leaf, out: np.ndarray) -> np.ndarray:
        """Write the tree sum of ``leaf(b)`` over all blocks into ``out``. Collective.

        ``leaf`` is only called for this rank's blocks and must fill all of
        ``out`` (any shape; C-contiguous), which ends identical on every rank.
        """
        layout = self.layout
        if layout.n_blocks == 0:
            out[:] = 0
            return out
        self._leaf = leaf
        self._out_like = out
        requests = []
        for k, j in self._sends:
            buf = self._buffer(("send", k))
            self._value(k, j, buf)
            dest = layout.owner((j - 1) << k)  # holder of the left sibling
            requests.append(self.comm.isend(buf, dest, tag=k))
        root = layout.owner(0)
        if layout.rank == root:
            self._value(self.levels, 0, out)
        with phase("reduce"):
            self.comm.wait_all(requests)
            self._leaf = self._out_like = None
            return self.comm.broadcast_inplace(out, root)

    # ------------------------------------------------------------ internals

    def _send_nodes(self) -> list[tuple[int, int]]:
        """Right children whose parent starts on an earlier rank, by level."""
        first, stop = self.layout.first, self.layout.stop
        nodes = []
        for k in range(self.levels):
            start = -(-first // (1 << k)) << k  # first node start >= first
            j = start >> k
            if j % 2 == 1 and start < stop:
                nodes.append((k, j))
        return nodes

    def _buffer(self, key: object) -> np.ndarray:
        """Scratch buffer ``key`` shaped and typed like the current ``out``."""
        out = self._out_like
        assert out is not None
        buf = self._scratch.get(key)
        if buf is None or buf.nbytes < out.nbytes:
            buf = self._scratch[key] = np.empty(out.nbytes, np.uint8)
        return buf[: out.nbytes].view(out.dtype).reshape(out.shape)

    def _value(self, k: int, j: int, out: np.ndarray) -> None:
        """Node (k, j) into ``out``; this rank holds the node's first block."""
        layout = self.layout
        start, end = j << k, min((j + 1) << k, layout.n_blocks)
        if layout.first <= start and end <= layout.stop:
            self._local(k, j, out)
            return
        right = (2 * j + 1) << (k - 1)
        self._value(k - 1, 2 * j, out)
        if right >= layout.n_blocks:
            return
        tmp = self._buffer(k)
        if right < layout.stop:
            self._value(k - 1, 2 * j + 1, tmp)
        else:
            with phase("reduce"):
                self.comm.recv(tmp, layout.owner(right), tag=k - 1)
        np.add(out, tmp, out=out)

    def _local(self, k: int, j: int, out: np.ndarray) -> None:
        """Node (k, j), all of whose blocks this rank holds, into ``out``."""
        if k == 0:
            assert self._leaf is not None
            self._leaf(j, out)
            return
        self._local(k - 1, 2 * j, out)
        if (2 * j + 1) << (k - 1) < self.layout.n_blocks:
            tmp = self._buffer(k)
            self._local(k - 1, 2 * j + 1, tmp)
            np.add(out, tmp, out=out)


#: Most rows per BLAS call of the products of samples' own rows (``W_l a_{l-1}``,
#: the activation updates): as fast as one call on all 60,000 rows of MNIST,
#: and OpenBLAS then touches 4 to 16 MB of its work space per thread instead
#: of 62 MB (float32 and float64 on two threads, docs/performance.md).
PRODUCT_ROWS = 4096


def split_rows(ranges: Sequence[tuple[int, int]], size: int) -> list[slice]:
    """Slices of at most ``size`` rows covering each ``(start, stop)`` of
    ``ranges`` in order, none across the end of a range."""
    return [
        slice(lo, min(lo + size, stop))
        for start, stop in ranges
        for lo in range(start, stop, size)
    ]


class SampleReducer:
    """Sums over the samples of all ranks, and how this rank's rows are cut.

    Owns the communicator and the summation layout: without
    ``deterministic`` a sum is one call on all local rows and one Allreduce;
    with it, one call per block of ``block_size`` global samples, the block
    sums added along the fixed tree of :class:`TreeSum`, so the result does
    not depend on the split. It also cuts the products of samples' own rows
    into BLAS calls (:meth:`product_rows`), never across a summation block.

    Collective on ``comm`` when ``deterministic`` (a gather of the row counts;
    every rank raises ``ValueError`` when a rank does not hold whole blocks);
    otherwise local.
    """

    def __init__(
        self, comm: Communicator, m_local: int, deterministic: bool, block_size: int
    ) -> None:
        self.comm = comm
        self.m_local = int(m_local)
        self.layout: BlockLayout | None = None
        if deterministic:
            # Global sample offsets follow from the local counts in rank order.
            counts = [int(c) for c in comm.gather_values(float(m_local))]
            layout = BlockLayout(counts, comm.rank, block_size)
            comm.raise_if_any(layout.misaligned())
            self.layout = layout
        self._tree: TreeSum | None = None  # built at the first sum

    @property
    def blocks(self) -> list[slice]:
        """This rank's rows as summed: all at once, or one slice per global block."""
        if self.layout is None:
            return [slice(None)]
        return [rows for _, rows in self.layout.local_blocks()]

    def product_rows(self, m: int) -> list[slice]:
        """The row ranges of the products of samples' own rows, ``m`` rows here.

        At most ``PRODUCT_ROWS`` rows each, and never across a summation block
        of ``deterministic``: a row's product must not depend on the rows that
        share its BLAS call, and with some BLAS kernels it does (OpenBLAS's
        Haswell kernels round the rows of a gemm's edge tiles differently,
        docs/determinism.md), while a block's rows, and so the calls inside
        it, are the same on any number of ranks.
        """
        return split_rows([b.indices(m)[:2] for b in self.blocks], PRODUCT_ROWS)

    def sum(self, leaf: Callable[[int, slice, np.ndarray], object], out: np.ndarray) -> np.ndarray:
        """Fill ``out`` with a sum over all ranks' samples. Collective.

        ``leaf(i, rows, buf)`` fills ``buf`` (``out``'s shape and dtype) with
        the sum over the local rows ``rows = blocks[i]``.
        """
        layout = self.layout
        if layout is None:
            leaf(0, slice(None), out)
            with phase("reduce"):
                return self.comm.sum_inplace(out)
        if self._tree is None:
            self._tree = TreeSum(layout, self.comm)
        blocks = layout.local_blocks()
        first = layout.first
        # The tree times its own messages as "reduce" (its leaves are compute).
        return self._tree(lambda b, buf: leaf(b - first, blocks[b - first][1], buf), out)
