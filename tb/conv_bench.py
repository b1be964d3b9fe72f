"""Every conv of a VGG layout on the RTL core for one synthetic image (tb.core_conv.CoreConv).

    python -m tb.conv_bench [--model vgg16_quant_project] [--sim verilator|icarus]
                            [--out build/conv_bench] [--seed 0] [--size 32]

The convs run in network order: features.0 on a signed image (levels -40..15: the
signed-first-layer path), each later conv on the previous conv's levels from the core
(max-pooled on the host where the layout pools), every conv but the last requantized in
the SFP, the last one raw. Weights are random in -7..7; each channel's thresholds are
quantiles of its integer conv outputs (every third channel descending), so the levels
spread over 0..15. Each layer's output from the RTL is compared with numpy (the integer
conv, torch.nn.functional.conv2d in float64, then Requant.apply) value for value.

Prints a table (cycles from the core's counter with every xmem load included, MAC
utilization, template build or lookup + binding, simulation) and the wall time split,
and writes it as JSON (path printed). Run it twice to see the per-geometry templates
come from the disk cache under --out.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.errors import ModelError
from model.vgg import MODELS
from tb.layer_cases import int_conv, quantile_requant


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def maxpool(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16_quant_project",
                    choices=sorted(k for k, v in MODELS.items() if v.a_bit == v.w_bit == 4))
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--out", type=Path, default=Path("build/conv_bench"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=32, help="image height and width")
    args = ap.parse_args(argv)
    from tb.core_conv import CoreConv

    try:
        t_start, cpu_start = time.perf_counter(), cpu_s() + cpu_s(resource.RUSAGE_CHILDREN)
        conv = CoreConv(sim=args.sim, build=args.out)
        rng = np.random.default_rng(args.seed)
        x = rng.integers(-40, 16, (3, args.size, args.size))
        convs = sum(1 for item in MODELS[args.model].items if isinstance(item, tuple))
        rows, k = [], 0
        check_s = 0.0
        bar = tqdm(total=convs, desc="convs", unit="layer", file=sys.stdout)
        for item in MODELS[args.model].items:
            if item == "M":
                x = maxpool(x)
                continue
            if not isinstance(item, tuple):
                continue
            oc = item[0]
            w = rng.integers(-7, 8, (oc, x.shape[0], 3, 3))
            t0 = time.perf_counter()
            sums = int_conv(x, w)
            last = k == convs - 1
            requant = None if last else quantile_requant(sums, rng)
            want = sums if last else requant.apply(sums)
            check_s += time.perf_counter() - t0
            cpu0 = cpu_s()
            run = conv.run(x, w, requant)
            run_cpu = cpu_s() - cpu0
            mismatches = int((run.out != want).sum())
            rows.append({"layer": k, "in_channels": x.shape[0], "out_channels": oc, "height": x.shape[1],
                         "width": x.shape[2], "signed_input": bool(x.min() < 0), "emit": run.shape.emit,
                         "cycles": run.cycles, "busy": run.busy, "macs": run.macs,
                         "utilization": run.utilization, "outputs_checked": int(want.size),
                         "mismatches": mismatches, "build_s": run.build_s, "sim_s": run.sim_s,
                         "sim_cpu_s": run.sim_cpu_s, "python_cpu_s": run_cpu})
            if mismatches:
                raise ModelError(f"conv {k}: {mismatches} of {want.size} outputs differ from the reference")
            x = run.out
            k += 1
            bar.update(1)
        bar.close()
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t_start
    cpu = cpu_s() + cpu_s(resource.RUSAGE_CHILDREN) - cpu_start
    print(f"{'conv':>4} {'shape':>18} {'emit':>7} {'cycles':>9} {'util':>6} {'checked':>8} {'build s':>8} "
          f"{'sim s':>7} {'sim CPU s':>9}")
    for r in rows:
        shape = f"{r['in_channels']}->{r['out_channels']} {r['height']}x{r['width']}"
        print(f"{r['layer']:>4} {shape:>18} {r['emit']:>7} {r['cycles']:>9,} {r['utilization']:>6.1%} "
              f"{r['outputs_checked']:>8,} {r['build_s']:>8.2f} {r['sim_s']:>7.2f} {r['sim_cpu_s']:>9.2f}")
    totals = {"cycles": sum(r["cycles"] for r in rows), "macs": sum(r["macs"] for r in rows),
              "build_s": sum(r["build_s"] for r in rows), "sim_s": sum(r["sim_s"] for r in rows),
              "check_s": check_s, "wall_s": wall, "cpu_s": cpu,
              "sim_cpu_s": sum(r["sim_cpu_s"] for r in rows)}
    print(f"total: {totals['cycles']:,} cycles, {totals['macs']:,} MACs, every output bit-exact; wall {wall:.1f} s "
          f"= build/bind {totals['build_s']:.1f} s + simulate {totals['sim_s']:.1f} s + reference "
          f"{check_s:.1f} s + rest; CPU {cpu:.1f} s (simulator {totals['sim_cpu_s']:.1f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "conv_bench.json"
    path.write_text(json.dumps({"model": args.model, "sim": args.sim, "layers": rows, **totals}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
