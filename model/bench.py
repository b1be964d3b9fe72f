"""``model bench``: vectorized reference tiling vs the seed notebooks' loops.

Times :func:`model.tiling.ws_reference` (and ``os_reference``) on a random layer
(default 64 -> 64 channels, 32x32; median of ``--repeats`` runs) and the seed-style
loop implementation (``model/seed_style.py``: an ``nn.Linear`` per position plus
the SFP accumulation loop, on CPU) on small layers, checks that both agree, and
extrapolates the loop time to the large layer from the measured per-position cost
of the largest small layer.  The extrapolation is labelled as such.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from .errors import ModelError
from .hwconfig import CONFIG
from .options import SEED, int_in
from .tiling import N_KIJ, os_reference, random_layer, ws_reference

__all__ = ["add_arguments", "run", "parse_layer"]


MAX_CHANNELS, MAX_HW = 512, 32        # the largest VGG16 layer on CIFAR-10


def parse_layer(text: str, option: str = "--layer") -> tuple[int, int, int]:
    """``"IC,OC,HW"`` -> (IC, OC, HW); ModelError naming ``option`` when malformed or out of range."""
    try:
        ic, oc, hw = (int(v) for v in str(text).split(","))
    except ValueError:
        raise ModelError(f"{option} {text!r}: expected IC,OC,HW (e.g. 8,8,6)") from None
    if not (1 <= ic <= MAX_CHANNELS and 1 <= oc <= MAX_CHANNELS and 1 <= hw <= MAX_HW):
        raise ModelError(f"{option} {text!r}: IC and OC must be in 1..{MAX_CHANNELS}, HW in 1..{MAX_HW} "
                         f"(VGG16 on CIFAR-10)")
    return ic, oc, hw


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layer", default="64,64,32", metavar="IC,OC,HW",
                   help="layer timed with the vectorized reference (default: 64,64,32)")
    p.add_argument("--loop-layer", action="append", default=None, metavar="IC,OC,HW",
                   help="layer timed with the seed-style loops; repeatable "
                        "(default: 8,8,6 and 16,16,8)")
    p.add_argument("--repeats", type=int_in(1, 1000), default=5, metavar="N",
                   help="runs of the vectorized reference; the median is reported (default: 5)")
    p.add_argument("--seed", type=SEED, default=0, metavar="S", help="random seed (default: 0)")


def _tiles(n):
    return -(-n // CONFIG.row)


def loop_counts(ic: int, oc: int, hw: int) -> tuple[int, int]:
    """(nn.Linear positions, accumulation steps) of the seed-style loops on an
    ic -> oc, hw x hw layer: one position per (kij, ic tile, oc tile, padded nij), one
    accumulation step per (output pixel, kij, ic tile, oc tile)."""
    tiles = _tiles(ic) * _tiles(oc)
    return N_KIJ * tiles * (hw + 2) ** 2, hw * hw * N_KIJ * tiles


def _fmt_s(t: float) -> str:
    if t >= 100:
        return f"{t:,.0f} s"
    if t >= 1:
        return f"{t:.2f} s"
    return f"{t * 1e3:.1f} ms"


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(args, echo=print) -> int:
    from . import seed_style  # slow reference (torch), imported only when benchmarking

    ic, oc, hw = parse_layer(args.layer)
    loop_layers = [parse_layer(s, "--loop-layer") for s in (args.loop_layer or ["8,8,6", "16,16,8"])]
    if args.repeats < 1:
        raise ModelError(f"--repeats must be >= 1, got {args.repeats}")
    rng = np.random.default_rng(args.seed)
    x, w = random_layer(rng, ic, oc, hw, hw)
    big = f"{ic}->{oc} {hw}x{hw}"
    # wide accumulators: random data may exceed 16 bits; the bench times, it does not judge
    ws_reference(x, w, acc_bw=64)                                   # warm-up
    t_ws = _median_time(lambda: ws_reference(x, w, acc_bw=64), args.repeats)
    t_os = _median_time(lambda: os_reference(x, w, psum_bw=64), args.repeats)

    rows = [("vectorized ws_reference", big, _fmt_s(t_ws), f"measured, median of {args.repeats}"),
            ("vectorized os_reference", big, _fmt_s(t_os), f"measured, median of {args.repeats}")]
    per_pos = per_acc = None
    for lic, loc, lhw in loop_layers:
        lx, lw = random_layer(rng, lic, loc, lhw, lhw)
        t0 = time.perf_counter()
        psum = seed_style.seed_ws_psum(lx, lw)
        t1 = time.perf_counter()
        out = seed_style.seed_accumulate(psum, lhw, lhw)
        t2 = time.perf_counter()
        ref = ws_reference(lx, lw, acc_bw=64)
        ok = np.array_equal(psum, ref.psum) and np.array_equal(out[:loc], ref.out)
        if not ok:
            raise ModelError(f"seed-style loops and ws_reference disagree on {lic}->{loc} "
                             f"{lhw}x{lhw} (internal error)")
        n_pos, n_acc = loop_counts(lic, loc, lhw)
        per_pos, per_acc = (t1 - t0) / n_pos, (t2 - t1) / n_acc
        rows.append(("seed-style loops", f"{lic}->{loc} {lhw}x{lhw}", _fmt_s(t2 - t0),
                     f"measured; {n_pos:,} nn.Linear positions at {per_pos * 1e6:.0f} us, "
                     f"psums match ws_reference"))
    lic, loc, lhw = loop_layers[-1]
    n_pos, n_acc = loop_counts(ic, oc, hw)
    t_loop = per_pos * n_pos + per_acc * n_acc
    rows.append(("seed-style loops", big, "~" + _fmt_s(t_loop),
                 f"EXTRAPOLATED from {lic}->{loc} {lhw}x{lhw}: per-position cost x "
                 f"{n_pos:,} positions (+ {n_acc:,} accumulation steps)"))

    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    w3 = max(len(r[2]) for r in rows)
    echo(f"{'implementation':<{w1}}  {'layer':<{w2}}  {'time':>{w3}}  note")
    for r in rows:
        echo(f"{r[0]:<{w1}}  {r[1]:<{w2}}  {r[2]:>{w3}}  {r[3]}")
    echo(f"speedup of ws_reference over the seed-style loops on {big}: "
         f"~{t_loop / t_ws:,.0f}x (loop time extrapolated)")
    return 0
