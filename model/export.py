"""``model export``: capture one layer, compute its reference tiling, write the classic files.

Writes, into ``--out``, the classic text vectors of the chosen dataflow (README section
"Classic text vectors", see :mod:`model.vectors` for the names) and ``tensors.npz``:

* ``x_int`` uint8 [IC, H, W], ``w_int`` int8 [OC, IC, 3, 3], ``out_int`` int32
  [OC, Ho, Wo] (before ReLU), ``psum`` int32 [n_ic_tiles, n_oc_tiles, array_size, Hp*Wp, 9]
  (the WS tiled psums), ``act_delta``, ``w_delta``, ``recovery_error`` (float64
  scalars), ``layer`` (str scalar), ``a_bit``, ``w_bit``, ``psum_bw`` (int scalars).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from .errors import ModelError
from .hwconfig import CONFIG
from .options import IMAGE, SEED, out_path
from .tiling import N_KIJ, LayerGeometry, lanes_per_pe, os_reference, ws_reference
from .vectors import acc_address_fits, prepare_out_dir, remove_other_sets, write_os_files, write_ws_files

__all__ = ["add_arguments", "run", "export_capture", "export_geometry"]

PSUM_BW_MIN, PSUM_BW_MAX = 2, 32   # lanes are held as int64 on the way to the files
#: the psum width tb/classic_tb.v reads unless built with -Pclassic_tb.psum_bw=N (its
#: parameter default; tb/test_classic.py checks that the two agree)
CLASSIC_TB_PSUM_BW = CONFIG.psum_bw


def check_psum_bw(value) -> int:
    """The --psum-bw value, or ModelError (one line) when it is not an integer in 2..32."""
    if isinstance(value, bool) or not isinstance(value, int) or not PSUM_BW_MIN <= value <= PSUM_BW_MAX:
        raise ModelError(f"--psum-bw must be an integer in {PSUM_BW_MIN}..{PSUM_BW_MAX}, got {value!r}")
    return value


def _psum_bw_arg(text: str) -> int:
    """argparse type of --psum-bw: refused on the command line, before the slow capture."""
    try:
        return check_psum_bw(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in {PSUM_BW_MIN}..{PSUM_BW_MAX}, "
                                         f"got {text!r}") from None
    except ModelError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--psum-bw ")) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=out_path, required=True, metavar="DIR",
                   help="output directory (created if missing)")
    p.add_argument("--dataflow", choices=("ws", "os"), default="ws",
                   help="which classic files to write (default: ws)")
    from .train import add_model_arguments
    add_model_arguments(p, "the checkpoint's, else vgg16_quant_project")
    p.add_argument("--layer", default=None, metavar="NAME",
                   help="conv layer (name or index; default: the model's demo layer)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="trained checkpoint (default: seeded, calibrated model)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="CIFAR-10 directory (default: synthetic images)")
    p.add_argument("--image", type=IMAGE, default=0, metavar="N",
                   help="image index (default: 0)")
    p.add_argument("--seed", type=SEED, default=0, metavar="S",
                   help="seed of the model and synthetic images (default: 0)")
    p.add_argument("--psum-bw", type=_psum_bw_arg, default=CONFIG.psum_bw, metavar="BITS",
                   help=f"psum / accumulator width in bits (default: {CONFIG.psum_bw})")


def export_geometry(cap) -> LayerGeometry:
    """The channel tiles of a capture's layer on the core's array, as export_capture's
    references cut it (CONFIG.row; two activations a lane in the 2-bit mode)."""
    ic, h, w = cap.x_int.shape
    return LayerGeometry(ic, cap.w_int.shape[0], h, w, CONFIG.row, lanes=lanes_per_pe(cap.a_bit))


def _reference_bytes(cap) -> int:
    """Bytes the WS reference (model.tiling.ws_reference) holds at once for a capture: its
    int64 psums [ic tiles, OC padded to the array, kij, padded map] in three copies (the
    product, the contiguous psum tensor, the gathered one)."""
    g = export_geometry(cap)
    return 3 * 8 * g.n_ic_tiles * g.n_oc_tiles * g.array_size * N_KIJ * g.Hp * g.Wp


def _rng(a) -> str:
    return f"{int(a.min())}..{int(a.max())}"


def export_capture(cap, out_dir, dataflow: str = "ws", psum_bw: int = CONFIG.psum_bw, echo=print) -> list[Path]:
    """Reference + files + tensors.npz for a :class:`~model.capture.LayerCapture`.

    ModelError (nothing written) for a layer wider than the array's lanes (``w_bit`` or
    ``a_bit`` of the model's layout above 4) or one whose reference psums would not fit the
    machine's memory (_reference_bytes). An earlier export's other files of the same
    dataflow in ``out_dir`` are removed (vectors.remove_other_sets), with a note.
    """
    if dataflow not in ("ws", "os"):
        raise ModelError(f"--dataflow must be ws or os, got {dataflow!r}")
    if cap.w_bit > 4 or cap.a_bit > 4:
        raise ModelError(f"{cap.layer_name}: w_bit={cap.w_bit} a_bit={cap.a_bit}: the array's vectors carry "
                         f"4-bit weights and activations (w_bit and a_bit at most 4); nothing written")
    need, have = _reference_bytes(cap), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        ic, oc = cap.x_int.shape[0], cap.w_int.shape[0]
        raise ModelError(f"{cap.layer_name}: the reference tiling of this {ic} -> {oc} channel, "
                         f"{cap.x_int.shape[1]}x{cap.x_int.shape[2]} layer needs about {need / 2**30:,.0f} GiB "
                         f"for its psums, this machine has {have / 2**30:,.0f} GiB; nothing written")
    psum_bw = check_psum_bw(psum_bw)
    d = prepare_out_dir(out_dir, "--out")
    kw = dict(stride=cap.stride, padding=cap.padding, a_bit=cap.a_bit, w_bit=cap.w_bit)
    ref = ws_reference(cap.x_int, cap.w_int, CONFIG.row, psum_bw, psum_bw, **kw)
    osref = os_reference(cap.x_int, cap.w_int, CONFIG.row, psum_bw, **kw) if dataflow == "os" else None
    out = ref.output()
    if cap.out_int.shape != out.shape or not np.array_equal(out, cap.out_int):
        raise ModelError(f"{cap.layer_name}: reference tiling disagrees with the captured "
                         f"integer convolution (internal error)")
    if osref is not None and not np.array_equal(osref.output(), out):
        raise ModelError(f"{cap.layer_name}: OS and WS references disagree (internal error)")

    x = np.asarray(cap.x_int)
    top = 1 << (cap.a_bit - 1)          # the unsigned levels a signed reading would get wrong
    hi = x[x >= top]
    echo(f"layer        {cap.layer_name}  ({ref.IC} -> {ref.OC} channels, {ref.H}x{ref.W}, "
         f"3x3, stride {cap.stride}, padding {cap.padding}; dataflow {dataflow})")
    echo(f"shapes       x_int {tuple(x.shape)}  w_int {tuple(cap.w_int.shape)}  "
         f"psum {tuple(ref.psum.shape)}  out {tuple(out.shape)}  "
         f"tiles ic {ref.n_ic_tiles} x oc {ref.n_oc_tiles}")
    echo(f"deltas       act_delta {cap.act_delta:.6g}  w_delta {cap.w_delta:.6g}  "
         f"recovery error {cap.recovery_error:.3g}")
    echo(f"ranges       x_int {_rng(x)} (values {top}..{2 * top - 1} present: "
         f"{f'yes, {hi.size} values' if hi.size else 'no'})  w_int {_rng(np.asarray(cap.w_int))}  "
         f"psum {_rng(ref.psum)}  out {_rng(out)}")
    overflows = list(ref.overflows) + (list(osref.overflows) if osref is not None else [])
    if overflows:
        echo(f"overflow     values do not fit {psum_bw}-bit two's complement:")
        for line in overflows:
            echo(f"  {line}")
    else:
        echo(f"overflow     none ({psum_bw}-bit psums and accumulations)")

    if psum_bw != CLASSIC_TB_PSUM_BW:
        echo(f"warning      {psum_bw}-bit psum lanes: tb/classic_tb.v reads {CLASSIC_TB_PSUM_BW}-bit ones "
             f"unless built for them (make classic PSUM_BW={psum_bw}, or iverilog "
             f"-Pclassic_tb.psum_bw={psum_bw}); the core's psums are {CLASSIC_TB_PSUM_BW}-bit")
    if dataflow == "ws":
        written = write_ws_files(d, ref)
        if not acc_address_fits(ref.H, ref.W):
            echo(f"note         acc_address.txt not written: 9 x {ref.Hp}x{ref.Wp} psum "
                 f"addresses exceed the 11-bit pmem address")
    else:
        written = write_os_files(d, osref)
    stale = remove_other_sets(d, written, dataflow)
    if stale:
        echo(f"note         removed {len(stale)} {dataflow.upper()} file(s) of an earlier export from {d} "
             f"(e.g. {stale[0].name}): its {dataflow.upper()} files are this export's only")
    npz = d / "tensors.npz"
    try:
        np.savez(npz, x_int=np.asarray(cap.x_int, dtype=np.uint8),
                 w_int=np.asarray(cap.w_int, dtype=np.int8),
                 out_int=out.astype(np.int32), psum=ref.psum.astype(np.int32),
                 act_delta=np.float64(cap.act_delta), w_delta=np.float64(cap.w_delta),
                 recovery_error=np.float64(cap.recovery_error),
                 layer=np.array(str(cap.layer_name)), a_bit=np.int64(cap.a_bit),
                 w_bit=np.int64(cap.w_bit), psum_bw=np.int64(psum_bw))
    except OSError as exc:
        raise ModelError(f"{npz}: cannot write: {exc.strerror or exc}") from None
    written.append(npz)
    echo(f"files        {len(written)} written to {d}")
    return written


def run(args) -> int:
    check_psum_bw(args.psum_bw)                   # fail before the (slow) capture
    prepare_out_dir(args.out, "--out", create=False)   # created only once the layer is known good
    from .capture import default_capture
    cap = default_capture(model_name=args.model, layer=args.layer, checkpoint=args.checkpoint,
                          data=args.data, image=args.image, seed=args.seed, act_quant=args.act_quant, echo=print)
    export_capture(cap, args.out, args.dataflow, args.psum_bw)
    return 0
