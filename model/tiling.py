"""Bit-exact reference of what an ``array_size`` x ``array_size`` MAC array computes.

Everything here is vectorized integer numpy (int64); no per-position Python loops.

Conventions (README sections "Numerics" and "Classic text vectors"):

* ``x_int`` is ``[IC, H, W]``, unsigned ``a_bit``-bit activations (0..15).
* ``w_int`` is ``[OC, IC, 3, 3]``, symmetric ``w_bit``-bit weights (-7..7).
* Stride 1, padding 1, 3x3 kernels only.  ``Hp = H + 2``, ``Wp = W + 2``; the padded
  map is flattened row-major, its index is ``nij`` (``n_nij = Hp * Wp``).
* ``kij = ki * 3 + kj``.  Output pixel ``o_nij`` (row-major over ``Ho x Wo``) reads,
  for offset ``kij``, the padded position
  ``nij = (o_nij // Wo) * Wp + o_nij % Wo + (kij // 3) * Wp + kij % 3``.
* Channel counts that are not multiples of ``array_size`` are zero-padded.

Weight stationary (WS): per input-channel tile ``i`` and output-channel tile ``o`` the
array holds ``w_tile[oc, ic]`` for one ``kij`` and streams every padded position
``nij``; column ``c`` (output channel ``o * array_size + c``) produces
``psum[i, o, c, nij, kij]``.  In 2-bit mode (``a_bit`` 2, ``lanes_per_pe``) an ic tile is
``2 * array_size`` channels: row ``r`` holds channels ``2r`` (weight slot 0, the low 2 bits
of the row's 4-bit lane) and ``2r + 1`` (slot 1, the high 2 bits), so one psum sums 16
input channels on an 8x8 array.  The SFP then accumulates, per output pixel, the 9
``kij`` psums of ic tile 0, then of ic tile 1, ... (that order defines the partial
accumulation prefixes that are checked against ``acc_bw``).

Output stationary (OS): each PE holds one (output pixel, output channel) sum; output
pixels go in groups of ``array_size`` (lanes ``nij_out``), output channels in tiles of
``array_size`` (lanes ``oc``).  Step ``s = ic * 9 + kij`` feeds
``a_pad[ic, (oi + ki) * Wp + (oj + kj)]`` with ``oi, oj = divmod(o_nij, Wo)`` from the
west and ``w_int[oc, ic, kij]`` from the north; each PE accumulates at ``psum_bw``.

Overflow is never silent: every value that does not fit its hardware width is
reported (``overflows``): WS psums and OS PE sums at ``psum_bw``, SFP sums at ``acc_bw``,
ReLU outputs on the ``psum_bw`` sfp_out lane, and ``strict=True`` raises :class:`PsumOverflowError`.
Note that two's-complement adders wrap, so a partial prefix that overflows while the
final value fits still ends correct in hardware; such prefixes are reported anyway
(as ``acc[...]`` / ``os_acc[...]`` lines) because they are outside the width.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import LayerError, ModelError, PsumOverflowError
from .hwconfig import CONFIG

__all__ = [
    "A_BIT", "W_BIT", "KERNEL", "PMEM_ADDR_BITS", "MAX_HW",
    "pad_flatten", "output_to_input_nij", "psum_address", "acc_addresses",
    "padded_operands", "os_operands", "field_range", "as_int_array", "random_layer",
    "LayerGeometry", "WSReference", "lanes_per_pe", "OSReference", "ws_reference", "os_reference", "check_layer",
    "check_int",
]

A_BIT = 4
W_BIT = 4
KERNEL = 3
N_KIJ = KERNEL * KERNEL
MAX_HW = 32
#: pmem address width (rtl/core_inst.vh ADDR_BITS)
PMEM_ADDR_BITS = CONFIG.addr_bits
#: at most this many offending values are listed per kind, then a count line
MAX_REPORT = 10


# ----------------------------------------------------------------------------------
# layout helpers
# ----------------------------------------------------------------------------------
def pad_flatten(x_int, padding: int = 1) -> np.ndarray:
    """Zero-pad ``[IC, H, W]`` by ``padding`` on every side, flatten to ``[IC, Hp*Wp]``."""
    x = np.asarray(x_int, dtype=np.int64)
    if x.ndim != 3:
        raise LayerError(f"x_int must be 3-D [IC, H, W], got shape {tuple(x.shape)}")
    p = int(padding)
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    return xp.reshape(x.shape[0], -1)


def output_to_input_nij(H: int, W: int, padding: int = 1, kernel: int = KERNEL) -> np.ndarray:
    """int64 ``[kernel**2, Ho*Wo]``: padded-map index ``nij`` read by output ``o_nij`` at ``kij``.

    ``nij = (o_nij // Wo) * Wp + o_nij % Wo + (kij // k) * Wp + kij % k`` (stride 1).
    """
    Hp, Wp = H + 2 * padding, W + 2 * padding
    Ho, Wo = Hp - kernel + 1, Wp - kernel + 1
    if Ho <= 0 or Wo <= 0:
        raise LayerError(f"feature map {H}x{W} too small for a {kernel}x{kernel} kernel")
    o = np.arange(Ho * Wo, dtype=np.int64)
    k = np.arange(kernel * kernel, dtype=np.int64)
    base = (o // Wo) * Wp + o % Wo
    off = (k // kernel) * Wp + k % kernel
    return off[:, None] + base[None, :]


def psum_address(kij, nij, n_nij: int, ict=0, oct=0, n_ict: int = 1):
    """pmem address of psum(kij, nij) of tile (ict, oct):
    ``((oct * n_ict + ict) * 9 + kij) * n_nij + nij``; for one tile ``kij * n_nij + nij``.

    This is THE contract with the RTL program builder (model/program.py uses the same
    layout): the array writes the psums of offset ``kij`` for padded positions
    ``nij = 0..n_nij-1`` at consecutive pmem addresses, one block of ``n_nij`` per
    ``kij``, one block of ``9 * n_nij`` per (oc tile, ic tile), ic tile inner.
    acc_address.txt lists the single-tile addresses.  Works on ints and numpy arrays.
    """
    return ((oct * n_ict + ict) * N_KIJ + kij) * n_nij + nij


def acc_addresses(H: int, W: int, padding: int = 1, kernel: int = KERNEL) -> np.ndarray:
    """int64 ``[Ho*Wo, kernel**2]``: pmem address of the psum that output ``o_nij``
    accumulates at offset ``kij`` (acc_address.txt lists it flattened, o_nij-major)."""
    idx = output_to_input_nij(H, W, padding, kernel)              # [kij, o_nij]
    n_nij = (H + 2 * padding) * (W + 2 * padding)
    kij = np.arange(kernel * kernel, dtype=np.int64)[:, None]
    return psum_address(kij, idx, n_nij).T.copy()


# ----------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------
def as_int_array(a, name: str) -> np.ndarray:
    """``a`` (numpy array, torch tensor, nested lists) as int64; refuses (ModelError, one
    line naming ``name``) non-numeric data and floats that are not whole numbers."""
    if hasattr(a, "detach"):                                     # torch tensor
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ModelError(f"{name} is not an array: {exc}") from None
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) \
            or np.issubdtype(arr.dtype, np.complexfloating):
        raise ModelError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ModelError(f"{name} must hold integers, got {float(arr[pos])} at {list(pos)}")
        arr = np.round(arr)
    return arr.astype(np.int64)


def _check_range(arr: np.ndarray, lo: int, hi: int, name: str, what: str, axes: str) -> None:
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        where = ", ".join(f"{a}={p}" for a, p in zip(axes.split(","), pos))
        raise ModelError(f"{name} value {int(arr[pos])} at [{where}] is outside "
                         f"{lo}..{hi} ({what}); {int(bad.sum())} value(s) out of range")


def check_int(v, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """v as an int, or ModelError (one line, naming the argument) for a bool, a non-integer
    (an integral float included) or a value outside minimum..maximum."""
    if (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < minimum
            or (maximum is not None and int(v) > maximum)):
        reach = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ModelError(f"{name} must be an integer {reach}, got {v!r}")
    return int(v)


def check_layer(x_int, w_int, *, stride: int = 1, padding: int = 1,
                a_bit: int = A_BIT, w_bit: int = W_BIT) -> tuple[np.ndarray, np.ndarray]:
    """Validate a layer for the array; return ``(x, w)`` as int64 arrays.

    Raises LayerError for shapes / mappings the array does not support and ModelError
    for values outside the 4-bit ranges.  Messages are one line and name the argument.
    """
    a_bit = check_int(a_bit, "a_bit")
    w_bit = check_int(w_bit, "w_bit", 2)
    if stride != 1:
        raise LayerError(f"stride {stride} not supported: the array maps stride 1 only")
    if padding != 1:
        raise LayerError(f"padding {padding} not supported: the array maps padding 1 only")
    x = as_int_array(x_int, "x_int")
    w = as_int_array(w_int, "w_int")
    if x.ndim != 3:
        raise LayerError(f"x_int must be 3-D [IC, H, W], got shape {tuple(x.shape)}")
    if w.ndim != 4:
        raise LayerError(f"w_int must be 4-D [OC, IC, 3, 3], got shape {tuple(w.shape)}")
    if w.shape[2:] != (KERNEL, KERNEL):
        raise LayerError(f"kernel {w.shape[2]}x{w.shape[3]} not supported: "
                         f"only 3x3 (stride 1, padding 1), w_int shape {tuple(w.shape)}")
    ic, h, wd = x.shape
    if ic == 0 or h == 0 or wd == 0:
        raise LayerError(f"x_int is empty: shape {tuple(x.shape)}")
    if w.shape[0] == 0:
        raise LayerError(f"w_int has no output channels: shape {tuple(w.shape)}")
    if w.shape[1] != ic:
        raise LayerError(f"w_int has {w.shape[1]} input channels but x_int has {ic} "
                         f"(w_int {tuple(w.shape)}, x_int {tuple(x.shape)})")
    if h > MAX_HW or wd > MAX_HW:
        raise LayerError(f"feature map {h}x{wd} not supported: H and W must be <= {MAX_HW}")
    _check_range(x, *field_range(a_bit, signed=False), "x_int", f"{a_bit}-bit unsigned", "ic,h,w")
    wmax = field_range(w_bit)[1]                       # symmetric: -wmax..wmax (-7..7)
    _check_range(w, -wmax, wmax, "w_int", f"{w_bit}-bit symmetric", "oc,ic,ki,kj")
    return x, w


def _pad_channels(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    extra = (-a.shape[axis]) % n
    if not extra:
        return a
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, extra)
    return np.pad(a, widths)


def field_range(bits: int, signed: bool = True) -> tuple[int, int]:
    """``(lo, hi)`` of a ``bits``-bit field: two's complement, or unsigned."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def random_layer(rng: np.random.Generator, ic: int, oc: int, h: int, w: int, a_bit: int = A_BIT
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A random layer over the full operand ranges: int64 ``x_int [ic, h, w]`` in
    0..2**a_bit-1 and ``w_int [oc, ic, 3, 3]`` in -(2**(W_BIT-1)-1)..2**(W_BIT-1)-1."""
    a_lo, a_hi = field_range(a_bit, signed=False)
    w_max = field_range(W_BIT)[1]                       # symmetric: -7..7, never -8
    x = rng.integers(a_lo, a_hi + 1, size=(ic, h, w), dtype=np.int64)
    wt = rng.integers(-w_max, w_max + 1, size=(oc, ic, KERNEL, KERNEL), dtype=np.int64)
    return x, wt


def lanes_per_pe(a_bit: int) -> int:
    """Activations one PE multiplies per cycle: 2 in 2-bit mode (``a_bit`` <= half the
    CORE_BW lane: two activations share the lane, each with its own weight), else 1."""
    return 2 if a_bit <= CONFIG.lane_bits // 2 else 1


def padded_operands(x: np.ndarray, w: np.ndarray, n: int, ic_tile: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The array's operands of a validated layer (``check_layer``'s int64 arrays):
    ``a [ICp, Hp*Wp]`` (padded map, flattened) and ``w [OCp, ICp, 9]``, output channels
    zero-padded to a multiple of ``n``, input channels to a multiple of ``ic_tile``
    (default ``n``; ``2 * n`` in 2-bit mode)."""
    ic_tile = n if ic_tile is None else ic_tile
    a = _pad_channels(pad_flatten(x, 1), 0, ic_tile)
    oc, ic = w.shape[:2]
    wk = _pad_channels(_pad_channels(w.reshape(oc, ic, N_KIJ), 0, n), 1, ic_tile)
    return a, wk


def os_operands(x: np.ndarray, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Output-stationary operand streams of a validated layer, step ``s = ic * 9 + kij``:
    ``act [n_groups, steps, n]`` (lane l = output pixel ``group * n + l``, the input under
    it at that step; zero past the last pixel) and ``wgt [n_oc_tiles, steps, n]`` (lane c =
    ``w[oct * n + c, ic, kij]``)."""
    a, wk = padded_operands(x, w, n)                               # [ICp, n_nij], [OCp, ICp, 9]
    _, H, W = x.shape
    steps = a.shape[0] * N_KIJ
    n_groups = -(-(H * W) // n)
    act = a[:, output_to_input_nij(H, W)]                          # [ICp, k, o_nij]
    act = _pad_channels(act, 2, n)                                 # zero lanes past the end
    act = np.ascontiguousarray(act.reshape(steps, n_groups, n).transpose(1, 0, 2))
    wgt = np.ascontiguousarray(wk.reshape(wk.shape[0] // n, n, steps).transpose(0, 2, 1))
    return act, wgt


def _report(values: np.ndarray, bits: int, label: str, fmt) -> list[str]:
    """Lines for every value of ``values`` outside ``bits`` two's complement.

    ``fmt(index_tuple)`` renders the bracket contents for one offender.
    """
    lo, hi = field_range(bits)
    if values.size == 0:
        return []
    if values.min() >= lo and values.max() <= hi:
        return []
    bad = np.argwhere((values < lo) | (values > hi))
    lines = [f"{label}[{fmt(tuple(int(i) for i in idx))}] = {int(values[tuple(idx)])} "
             f"does not fit {bits}-bit two's complement ({lo}..{hi})"
             for idx in bad[:MAX_REPORT]]
    if len(bad) > MAX_REPORT:
        lines.append(f"... and {len(bad) - MAX_REPORT} more {label} values do not fit "
                     f"{bits}-bit two's complement ({len(bad)} in total)")
    return lines


def _finish(overflows: list[str], strict: bool) -> None:
    if strict and overflows:
        raise PsumOverflowError(overflows[0])


# ----------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------
@dataclass
class LayerGeometry:
    """One 3x3 / stride 1 / padding 1 conv layer cut into channel tiles of an array_size x
    array_size array: the one geometry of the references (WSReference, OSReference) and the
    program builders (model.program). ``IC``/``OC`` are the real channel counts; a channel
    tile is ``array_size`` channels, the last one zero-padded; in 2-bit mode (``lanes`` 2)
    an input-channel tile is ``2 * array_size`` channels.

    ``batch`` images share the weights (program builders only; the references take one
    image): their padded maps lie one after the other, image ``b`` at ``nij`` from
    ``b * Hp * Wp``, so ``n_nij``, ``n_onij`` and ``nij_table`` cover the whole batch and
    output pixel ``o_nij`` is pixel ``o_nij % (Ho*Wo)`` of image ``o_nij // (Ho*Wo)``; each
    image keeps its own padding, and no output sits on the gap between two maps."""
    IC: int
    OC: int
    H: int
    W: int
    array_size: int
    lanes: int = field(default=1, kw_only=True)   # activations per PE and cycle (lanes_per_pe)
    batch: int = field(default=1, kw_only=True)   # images sharing the weights

    @property
    def ic_tile(self) -> int:
        """Input channels per ic tile: array_size x lanes."""
        return self.array_size * self.lanes

    @property
    def n_ic_tiles(self) -> int:
        return -(-self.IC // self.ic_tile)

    @property
    def n_oc_tiles(self) -> int:
        return -(-self.OC // self.array_size)

    @property
    def Hp(self) -> int:
        return self.H + 2

    @property
    def Wp(self) -> int:
        return self.W + 2

    @property
    def Ho(self) -> int:
        return self.H

    @property
    def Wo(self) -> int:
        return self.W

    @property
    def n_nij(self) -> int:
        """Positions of the padded input maps (batch x Hp x Wp)."""
        return self.batch * self.Hp * self.Wp

    @property
    def n_onij(self) -> int:
        """Output pixels (batch x Ho x Wo)."""
        return self.batch * self.Ho * self.Wo

    @cached_property
    def nij_table(self) -> np.ndarray:
        """int64 [9, batch*Ho*Wo]: output_to_input_nij of this layer, image b's outputs
        reading image b's padded map (offset b * Hp * Wp)."""
        one = output_to_input_nij(self.H, self.W)
        offsets = np.arange(self.batch, dtype=np.int64) * (self.Hp * self.Wp)
        return (one[:, None, :] + offsets[None, :, None]).reshape(N_KIJ, -1)

    @property
    def name(self) -> str:
        """'IC->OC HxW' (and ', batch N' for more than one image), for messages."""
        return f"{self.IC}->{self.OC} {self.H}x{self.W}" + (f", batch {self.batch}" if self.batch > 1 else "")

    def is_padding(self, nij: int) -> bool:
        """Is padded position nij on the zero border of its image's map?"""
        y, x = divmod(nij % (self.Hp * self.Wp), self.Wp)
        return y in (0, self.Hp - 1) or x in (0, self.Wp - 1)

    def interior_index(self, nij: int) -> int:
        """Index of the non-padding position nij among the batch's pixels
        (image-major, row-major: b * H * W + (y - 1) * W + x - 1)."""
        b, rest = divmod(nij, self.Hp * self.Wp)
        y, x = divmod(rest, self.Wp)
        return (b * self.H + y - 1) * self.W + (x - 1)

    def input_nij(self, o_nij: int, kij: int) -> int:
        """Index in the padded map of the input under output pixel o_nij at offset kij."""
        return int(self.nij_table[kij, o_nij])


# ----------------------------------------------------------------------------------
# weight stationary
# ----------------------------------------------------------------------------------
@dataclass
class WSReference(LayerGeometry):
    """What the array computes in weight-stationary mode (all int64).

    activation: ``[n_ic_tiles, ic_tile (channel in the tile), Hp*Wp (nij)]`` (the padded map
    per ic tile; ic_tile = array_size, or 2 x array_size in 2-bit mode, where channel j of
    the tile is row j // 2, weight slot j % 2);
    weight: ``[n_oc_tiles, n_ic_tiles, array_size (col), ic_tile, 9 (kij)]``
    (read-only view); psum: ``[n_ic_tiles, n_oc_tiles, array_size (col), Hp*Wp (nij),
    9 (kij)]``; out / out_relu: ``[OC, Ho*Wo]`` accumulated over ic tiles and kij (before /
    after ReLU).  The geometry fields come from LayerGeometry.
    """
    activation: np.ndarray
    weight: np.ndarray
    psum: np.ndarray
    out: np.ndarray
    out_relu: np.ndarray
    psum_bw: int
    acc_bw: int
    overflows: list[str] = field(default_factory=list)

    def output(self, relu: bool = False) -> np.ndarray:
        """int64 ``[OC, Ho, Wo]``."""
        o = self.out_relu if relu else self.out
        return o.reshape(self.OC, self.Ho, self.Wo)

    def out_tiles(self, relu: bool = True) -> np.ndarray:
        """int64 ``[n_oc_tiles, array_size, Ho*Wo]`` (padded channels are zero)."""
        o = self.out_relu if relu else self.out
        o = _pad_channels(o, 0, self.array_size)
        return o.reshape(self.n_oc_tiles, self.array_size, -1)


def ws_reference(x_int, w_int, array_size: int = CONFIG.row, psum_bw: int = CONFIG.psum_bw,
                 acc_bw: int | None = None,
                 strict: bool = False, *, stride: int = 1, padding: int = 1,
                 a_bit: int = A_BIT, w_bit: int = W_BIT, ic_tile_shift: tuple = (),
                 emit: str = "relu") -> WSReference:
    """Weight-stationary tiling of one 3x3 / stride 1 / padding 1 layer (see module doc).

    acc_bw: width the accumulated sums are checked against; None (the default) is psum_bw,
    the classic flow's (out.txt holds psum_bw-bit lanes). The core's SFP accumulates at
    hwconfig.CONFIG.acc_bw: model.program passes that explicitly. a_bit 2 is the array's 2-bit
    mode: ic tiles of 2 x array_size channels (module doc).
    ic_tile_shift: per ic tile, 1 when the SFP adds its psums times 2**lane_bits (a signed
    input's high digit, model.program.signed_input); () = none.
    emit: "relu" (the SFP emits ReLU(out) on a psum_bw lane, which is checked), "raw" or
    "requant" (the emitted value is the whole sum or its level: no psum_bw check)."""
    n = check_int(array_size, "array_size")
    psum_bw = check_int(psum_bw, "psum_bw", 2)
    acc_bw = check_int(psum_bw if acc_bw is None else acc_bw, "acc_bw", 2)
    x, w = check_layer(x_int, w_int, stride=stride, padding=padding, a_bit=a_bit, w_bit=w_bit)
    IC, H, W = x.shape
    OC = w.shape[0]
    Hp, Wp = H + 2, W + 2
    Ho, Wo = H, W
    n_nij = Hp * Wp

    lanes = lanes_per_pe(a_bit)
    ict = n * lanes                                                # channels of an ic tile
    a, wk = padded_operands(x, w, n, ict)                          # [ICp, n_nij], [OCp, ICp, 9]
    nI, nO = a.shape[0] // ict, wk.shape[0] // n
    a_t = a.reshape(nI, ict, n_nij)                                # [i, j, nij]
    w_t = wk.reshape(nO, n, nI, ict, N_KIJ)                        # [o, c, i, j, k]
    # per ic tile: [(o c k), j] @ [j, nij]
    wm = w_t.transpose(2, 0, 1, 4, 3).reshape(nI, nO * n * N_KIJ, ict)
    prod = np.matmul(wm, a_t)                                      # [i, (o c k), nij]
    psum = prod.reshape(nI, nO, n, N_KIJ, n_nij).transpose(0, 1, 2, 4, 3)
    psum = np.ascontiguousarray(psum)                              # [i, o, c, nij, k]

    idx = output_to_input_nij(H, W)                                # [k, o_nij]
    kk = np.arange(N_KIJ)[:, None]
    g = psum[:, :, :, idx, kk]                                     # [i, o, c, k, o_nij]
    # accumulation order: kij 0..8 of ic tile 0, then ic tile 1, ...
    if ic_tile_shift:
        if len(ic_tile_shift) != nI:
            raise ModelError(f"ic_tile_shift has {len(ic_tile_shift)} entries for {nI} ic tiles")
        g = g << (CONFIG.lane_bits * np.asarray(ic_tile_shift, dtype=np.int64))[:, None, None, None, None]
    seq = g.transpose(1, 2, 4, 0, 3).reshape(nO, n, Ho * Wo, nI * N_KIJ)
    pref = np.cumsum(seq, axis=-1)
    out_p = pref[..., -1].reshape(nO * n, Ho * Wo)                 # [OCp, o_nij]
    out = np.ascontiguousarray(out_p[:OC])

    overflows = _report(psum, psum_bw, "psum",
                        lambda t: f"ic_tile={t[0]}, oc_tile={t[1]}, col={t[2]}, "
                                  f"nij={t[3]}, kij={t[4]}")
    overflows += _report(pref[..., :-1], acc_bw, "acc",
                         lambda t: f"oc_tile={t[0]}, col={t[1]}, o_nij={t[2]}, "
                                   f"ic_tile={t[3] // N_KIJ}, kij={t[3] % N_KIJ}")
    overflows += _report(out, acc_bw, "out", lambda t: f"oc={t[0]}, o_nij={t[1]}")
    if emit == "relu":   # the SFP emits ReLU(out) on a psum_bw lane (sfp_out)
        overflows += _report(np.maximum(out, 0), psum_bw, "sfp_out", lambda t: f"oc={t[0]}, o_nij={t[1]}")
    _finish(overflows, strict)
    return WSReference(activation=a_t, weight=w_t.transpose(0, 2, 1, 3, 4), psum=psum,
                       out=out, out_relu=np.maximum(out, 0), array_size=n, IC=IC, OC=OC, H=H, W=W,
                       lanes=lanes, psum_bw=psum_bw, acc_bw=acc_bw, overflows=overflows)


# ----------------------------------------------------------------------------------
# output stationary
# ----------------------------------------------------------------------------------
@dataclass
class OSReference(LayerGeometry):
    """What the array computes in output-stationary mode (all int64).

    activation: ``[n_groups, n_oc_tiles, steps, array_size (lane nij_out)]``
    (read-only broadcast view: it does not depend on the oc tile);
    weight: ``[n_groups, n_oc_tiles, steps, array_size (lane oc)]`` (read-only
    broadcast view: it does not depend on the group); ``steps = ICp * 9``, ic outer,
    kij inner.  out / out_relu: ``[n_groups, n_oc_tiles, array_size (nij_out),
    array_size (oc)]``; lanes past ``Ho*Wo`` and padded channels are zero. The geometry
    fields come from LayerGeometry.
    """
    activation: np.ndarray
    weight: np.ndarray
    out: np.ndarray
    out_relu: np.ndarray
    n_groups: int
    steps: int
    psum_bw: int
    overflows: list[str] = field(default_factory=list)

    def output(self, relu: bool = False) -> np.ndarray:
        """int64 ``[OC, Ho, Wo]``."""
        o = self.out_relu if relu else self.out                   # [g, o, l, c]
        full = o.transpose(1, 3, 0, 2).reshape(self.n_oc_tiles * self.array_size, -1)
        return full[:self.OC, :self.Ho * self.Wo].reshape(self.OC, self.Ho, self.Wo)


def os_reference(x_int, w_int, array_size: int = CONFIG.row, psum_bw: int = CONFIG.psum_bw, strict: bool = False,
                 *, stride: int = 1, padding: int = 1,
                 a_bit: int = A_BIT, w_bit: int = W_BIT) -> OSReference:
    """Output-stationary view of one 3x3 / stride 1 / padding 1 layer (see module doc)."""
    n = check_int(array_size, "array_size")
    psum_bw = check_int(psum_bw, "psum_bw", 2)
    x, w = check_layer(x_int, w_int, stride=stride, padding=padding, a_bit=a_bit, w_bit=w_bit)
    IC, H, W = x.shape
    OC = w.shape[0]
    act, wgt = os_operands(x, w, n)                                # [g, s, lane], [o, s, lane oc]
    nG, S, _ = act.shape
    nO = wgt.shape[0]

    A = act.transpose(0, 2, 1).reshape(nG * n, S)                  # [(g l), s]
    Wm = wgt.transpose(1, 0, 2).reshape(S, nO * n)                 # [s, (o c)]
    out = (A @ Wm).reshape(nG, n, nO, n).transpose(0, 2, 1, 3)     # [g, o, l, c]
    out = np.ascontiguousarray(out)

    overflows = _os_prefix_report(act, wgt, A, Wm, psum_bw, n)
    overflows += _report(out, psum_bw, "os_out",
                         lambda t: f"group={t[0]}, oc_tile={t[1]}, nij_out={t[2]}, col={t[3]}")
    _finish(overflows, strict)
    act_v = np.broadcast_to(act[:, None], (nG, nO, S, n))
    wgt_v = np.broadcast_to(wgt[None], (nG, nO, S, n))
    return OSReference(activation=act_v, weight=wgt_v, out=out, out_relu=np.maximum(out, 0),
                       array_size=n, IC=IC, OC=OC, H=H, W=W, n_groups=nG, steps=S,
                       psum_bw=psum_bw, overflows=overflows)


def _os_prefix_report(act, wgt, A, Wm, bits: int, n: int) -> list[str]:
    """Partial sums (all steps but the last) in the OS PEs outside ``bits``.

    Activations are >= 0, so every prefix lies between the sum of the negative and
    the sum of the positive products; only (group, oc tile) blocks whose bounds leave
    the range are expanded (in chunks, to bound memory).
    """
    lo, hi = field_range(bits)
    nG, S, _ = act.shape
    nO = wgt.shape[0]
    pos = (A @ np.maximum(Wm, 0)).reshape(nG, n, nO, n).max(axis=(1, 3))
    neg = (A @ np.minimum(Wm, 0)).reshape(nG, n, nO, n).min(axis=(1, 3))
    blocks = np.argwhere((pos > hi) | (neg < lo))                  # [(g, o)]
    lines: list[str] = []
    total = 0
    chunk = max(1, 4_000_000 // max(1, S * n * n))
    for start in range(0, len(blocks), chunk):
        b = blocks[start:start + chunk]
        prod = act[b[:, 0]][:, :, :, None] * wgt[b[:, 1]][:, :, None, :]  # [k, s, l, c]
        pref = np.cumsum(prod, axis=1)[:, :-1]
        bad = np.argwhere((pref < lo) | (pref > hi))
        total += len(bad)
        for k, s, l, c in bad[:max(0, MAX_REPORT - len(lines))]:
            g, o = (int(v) for v in b[k])
            lines.append(f"os_acc[group={g}, oc_tile={o}, nij_out={int(l)}, col={int(c)}, "
                         f"step={int(s)} (ic={int(s) // N_KIJ}, kij={int(s) % N_KIJ})] = "
                         f"{int(pref[k, s, l, c])} does not fit {bits}-bit two's "
                         f"complement ({lo}..{hi})")
    if total > MAX_REPORT:
        lines.append(f"... and {total - MAX_REPORT} more os_acc values do not fit "
                     f"{bits}-bit two's complement ({total} in total)")
    return lines
