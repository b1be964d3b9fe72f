"""Every conv of a VGG layout on the RTL core, for one synthetic image and for a batch (tb.core_conv.CoreConv).

    python -m tb.conv_bench [--model vgg16_quant_project] [--sim verilator|icarus]
                            [--out build/conv_bench] [--seed 0] [--size 32] [--batch 8]

The convs run in network order: features.0 on a signed image (levels -40..15: the
signed-first-layer path), each later conv on the previous conv's levels from the core
(max-pooled on the host where the layout pools), every conv but the last requantized in
the SFP, the last one raw. Weights are random in -7..7; each channel's thresholds are
quantiles of its integer conv outputs (every third channel descending), so the levels
spread over 0..15. Each layer's output from the RTL is compared with numpy (the integer
conv, torch.nn.functional.conv2d in float64, then Requant.apply) value for value, image
by image.

The network runs twice with the same weights: on image 0 alone (batch 1), then on
--batch distinct images (0 skips it), each layer in programs of up to
model.program.network.max_batch images that share every weight word loaded (tb.core_conv;
the thresholds are the quantiles over the whole batch's sums).

Prints a table (cycles from the core's counter with every xmem load included, MAC
utilization, SCALE-Sim's WS and OS cycles of the layer, template build or lookup +
binding, simulation; cycles per image and utilization at the batch) and the wall time
split, and writes it as JSON (path printed). Run it twice to see the per-geometry
templates come from the disk cache under --out.
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
from model.options import out_path
from model.hwconfig import CONFIG
from model.program.memory_map import scalesim_cycles
from model.vgg import MODELS
from tb.layer_cases import int_conv, quantile_requant


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime

# images of the batched run: a 2x2 layer's weight set then serves 32 positions, more than the
# array's rows, so its columns are LOADed one at a time (ws_fast: no paired weight sets)
BATCH = 8


def images(seed: int, n: int, size: int) -> np.ndarray:
    """n synthetic images (n, 3, size, size): signed levels -40..15 (the signed first layer)."""
    return np.random.default_rng(seed).integers(-40, 16, (n, 3, size, size))


def maxpool(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H/2, W/2)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def run_network(conv, model: str, images: np.ndarray, seed: int, desc: str) -> tuple[list[dict], float]:
    """Every conv of `model` on `images` (N, 3, H, W) through conv.run in network order;
    the weights come from `seed` (the same for any batch). Returns a row per conv and the
    time spent on the reference. ModelError when an output differs from the reference."""
    rng = np.random.default_rng(seed)
    x, rows, check_s = images, [], 0.0
    convs = [item for item in MODELS[model].items if isinstance(item, tuple)]
    bar = tqdm(total=len(convs), desc=desc, unit="layer", file=sys.stdout)
    for item in MODELS[model].items:
        if item == "M":
            x = maxpool(x)
            continue
        if not isinstance(item, tuple):
            continue
        k, oc = len(rows), item[0]
        w = rng.integers(-7, 8, (oc, x.shape[1], 3, 3))
        t0 = time.perf_counter()
        sums = np.stack([int_conv(image, w) for image in x])
        last = k == len(convs) - 1
        requant = None if last else quantile_requant(sums.transpose(1, 0, 2, 3), rng)
        want = sums if last else np.stack([requant.apply(s) for s in sums])
        check_s += time.perf_counter() - t0
        cpu0 = cpu_s()
        run = conv.run(x, w, requant)
        run_cpu = cpu_s() - cpu0
        bad = [int((got != ref).sum()) for got, ref in zip(run.out, want)]
        n, h, wd = len(x), x.shape[2], x.shape[3]
        rows.append({"layer": k, "in_channels": x.shape[1], "out_channels": oc, "height": h, "width": wd,
                     "signed_input": bool(x.min() < 0), "emit": run.shape.emit, "images": n,
                     "programs": run.programs, "program_batch": run.shape.batch,
                     "cycles": run.cycles, "cycles_per_image": run.cycles / n, "busy": run.busy, "macs": run.macs,
                     "ideal_cycles_per_image": run.macs / n / CONFIG.row ** 2, "utilization": run.utilization,
                     "scalesim_ws": scalesim_cycles(x.shape[1], oc, h, wd, "ws"),
                     "scalesim_os": scalesim_cycles(x.shape[1], oc, h, wd, "os"),
                     "outputs_checked": int(want.size), "mismatches": sum(bad), "build_s": run.build_s,
                     "sim_s": run.sim_s, "sim_cpu_s": run.sim_cpu_s, "python_cpu_s": run_cpu})
        if sum(bad):
            worst = int(np.argmax(bad))
            raise ModelError(f"conv {k}: {sum(bad)} of {want.size} outputs differ from the reference "
                             f"(image {worst}: {bad[worst]})")
        x = run.out
        bar.update(1)
    bar.close()
    return rows, check_s


def totals(rows: list[dict]) -> dict:
    """The whole network: summed cycles, MACs, SCALE-Sim figures and times, per image too."""
    images = rows[0]["images"]
    out = {key: sum(r[key] for r in rows) for key in ("cycles", "macs", "busy", "scalesim_ws", "scalesim_os",
                                                       "outputs_checked", "mismatches", "build_s", "sim_s",
                                                       "sim_cpu_s")}
    out.update(images=images, cycles_per_image=out["cycles"] / images,
               ideal_cycles_per_image=out["macs"] / images / CONFIG.row ** 2,
               utilization=out["macs"] / (CONFIG.row ** 2 * out["cycles"]))
    return out


def print_table(rows: list[dict], batched: list[dict]) -> None:
    n = batched[0]["images"] if batched else 0
    head = f"{'conv':>4} {'shape':>18} {'emit':>7} {'cycles':>9} {'util':>6} {'SCALE-Sim WS':>12} {'OS':>9}"
    if batched:
        head += f" {'b' + str(n) + ' progs':>9} {'cyc/image':>10} {'util':>6}"
    print(head + f" {'checked':>8} {'build s':>8} {'sim s':>7}")
    for i, r in enumerate(rows + [None]):
        r = r or {"layer": "all", **totals(rows)}
        shape = (f"{r['in_channels']}->{r['out_channels']} {r['height']}x{r['width']}" if "height" in r else "network")
        line = (f"{r['layer']:>4} {shape:>18} {r.get('emit', ''):>7} {r['cycles']:>9,} {r['utilization']:>6.1%} "
                f"{r['scalesim_ws']:>12,} {r['scalesim_os']:>9,}")
        if batched:
            b = batched[i] if i < len(rows) else totals(batched)
            progs = f"{b['programs']}x{b['program_batch']}" if "programs" in b else ""
            line += f" {progs:>9} {b['cycles_per_image']:>10,.0f} {b['utilization']:>6.1%}"
        checked = r["outputs_checked"] + (b["outputs_checked"] if batched else 0)
        print(line + f" {checked:>8,} {r['build_s'] + (b['build_s'] if batched else 0):>8.2f} "
                     f"{r['sim_s'] + (b['sim_s'] if batched else 0):>7.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16_quant_project",
                    choices=sorted(k for k, v in MODELS.items() if v.a_bit == v.w_bit == 4))
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--out", type=lambda t: Path(out_path(t)), default=Path("build/conv_bench"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=32, help="image height and width")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"images of the batched run (0: none; default {BATCH})")
    args = ap.parse_args(argv)
    pools = MODELS[args.model].items.count("M")
    for bad, message in ((args.batch < 0, f"--batch must be 0 or more, got {args.batch}"),
                         (args.size < 1 or args.size % 2 ** pools,
                          f"--size must be a positive multiple of {2 ** pools} ({args.model} halves the "
                          f"map {pools} times), got {args.size}"),
                         (args.out.exists() and not args.out.is_dir(), f"--out {args.out}: not a folder")):
        if bad:
            print(f"error: {message}", file=sys.stderr)
            return 2
    from tb.core_conv import CoreConv

    try:
        t_start, cpu_start = time.perf_counter(), cpu_s() + cpu_s(resource.RUSAGE_CHILDREN)
        conv = CoreConv(sim=args.sim, build=args.out)
        batch = images(args.seed, max(args.batch, 1), args.size)
        rows, check_s = run_network(conv, args.model, batch[:1], args.seed + 1, "batch 1")
        batched, check_n = (run_network(conv, args.model, batch, args.seed + 1, f"batch {args.batch}")
                            if args.batch else ([], 0.0))
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t_start
    cpu = cpu_s() + cpu_s(resource.RUSAGE_CHILDREN) - cpu_start
    print_table(rows, batched)
    whole = totals(rows)
    print(f"batch 1: {whole['cycles']:,} cycles, {whole['macs']:,} MACs ({whole['utilization']:.1%}), "
          f"every output bit-exact")
    result = {"model": args.model, "sim": args.sim, "layers": rows, **whole, "check_s": check_s + check_n,
              "wall_s": wall, "cpu_s": cpu}
    if batched:
        b = totals(batched)
        print(f"batch {args.batch}: {b['cycles']:,} cycles, {b['cycles_per_image']:,.0f} per image "
              f"({b['utilization']:.1%}), every output of every image bit-exact")
        result["batched"] = {"batch": args.batch, "layers": batched, **b}
    print(f"wall {wall:.1f} s = build/bind {whole['build_s'] + result.get('batched', {}).get('build_s', 0):.1f} s "
          f"+ simulate {whole['sim_s'] + result.get('batched', {}).get('sim_s', 0):.1f} s + reference "
          f"{check_s + check_n:.1f} s + rest; CPU {cpu:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "conv_bench.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
