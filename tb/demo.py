"""The main job: take a layer (default the 8->8 layer) from the quantized VGG16, run it
through the RTL core and report what was checked and how many cycles it took.

    systolic demo [--out DIR] [--seed S] [--array N] [--model NAME|LAYOUT] [--layer NAME]
                  [--checkpoint PATH --data DIR --image N] [--act-quant course|unsigned]

Steps: the layer is captured from the model once; its classic text vectors and tensors.npz
are written as by `systolic export`; the same tensors then run through one n x n core
(n = --array, default rtl/core_inst.vh's) in cocotb in every schedule that can run the
layer, with every psum and output compared bit for bit against the reference tiling.
A 2-bit layer (a_bit 2) also runs in the array's 2-bit mode (fast2). Without --model,
--layer and --checkpoint the demo ends with one more row: the 16 -> 16 layer of the
course's part-2 model (PART2) in the 2-bit mode.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from model.errors import LayerError, ModelError
from model.hwconfig import CONFIG
from model.options import IMAGE, SEED, int_in, out_path
from model.train import DEFAULT_MODEL, add_model_arguments

MAX_CYCLES = 20_000    # the 8->8 layer: 144 at the limit, 560 in the classic schedule
# Published figures of the course's designs, all on an 8 x 8 array, for this layer (README "Two commands").
COURSE_ARRAY = 8
COURSE_LAYER = (8, 8, 4, 4)    # ic, oc, output height, width
COURSE_ANCHORS = [("typical course designs (classic flow)", "900-1,900"),
                  ("best published course variant", "875")]
PART2 = "vgg16_quant_project_part2"   # the 2-bit row of the default demo: its 16 -> 16 layer


def add_arguments(p) -> None:
    p.add_argument("--out", type=out_path, default="build/demo", help="folder for the exported files")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the model weights and synthetic image")
    p.add_argument("--array", type=int, default=CONFIG.row,
                   help=f"array size n of the n x n core (default {CONFIG.row}, rtl/core_inst.vh)")
    p.add_argument("--layer", default=None, metavar="NAME",
                   help="conv layer, name or index (default: the model's demo layer)")
    p.add_argument("--checkpoint", help="trained checkpoint (default: seeded weights)")
    p.add_argument("--data", help="CIFAR-10 folder, to use a real test image")
    p.add_argument("--image", type=IMAGE, default=0, help="test image index")
    p.add_argument("--max-cycles", type=int_in(1), default=MAX_CYCLES, metavar="N",
                   help=f"refuse a layer whose every schedule needs more than N cycles at the physical "
                        f"limit of the array (default {MAX_CYCLES:,}: minutes of simulation)")
    add_model_arguments(p, "the checkpoint's, else vgg16_quant_project")


def anchors(x_int, w_int, n: int) -> list[tuple[str, str]]:
    """Reference points for the cycle counts: the course's (8 x 8 only), SCALE-Sim v2's
    analytic model and the physical limit (useful MACs on n^2 PEs) for this array."""
    from model.program import scalesim_cycles, useful_macs

    ic, h, w = x_int.shape
    oc = w_int.shape[0]
    macs = useful_macs(ic, oc, h, w)
    ws, os_ = (scalesim_cycles(ic, oc, h, w, flow, n) for flow in ("ws", "os"))
    found = COURSE_ANCHORS if n == COURSE_ARRAY and (ic, oc, h, w) == COURSE_LAYER else []
    return found + [("SCALE-Sim v2 WS / OS", f"{ws:,} / {os_:,}"),
                    (f"physical limit ({macs:,} MACs on {n * n} MACs)", f"{-(-macs // (n * n)):,}")]


def simulate(case: dict, schedules: list[str], name: str, n: int) -> list[dict] | None:
    """run_case on one n x n core; None (after printing the first mismatch) when it fails."""
    from tb import runner
    from tb.core_layer import run_case

    log = runner.SIM_BUILD / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    try:
        return run_case(case, ",".join(schedules), name, array_size=n, log_file=log)
    except AssertionError as exc:
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
        found = [l.strip() for l in lines if "mismatch" in l.lower() or "AssertionError" in l][:5]
        print("FAILED: " + "\n        ".join(found or [str(exc).splitlines()[0]]) + f"\nsimulator log: {log}")
        return None


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        print(f"{r['dataflow']:<9}{r['schedule']:<10}{r['psums_checked']:>7}{r['outputs_checked']:>9}"
              f"{r['cycles']:>8}{r['utilization']:>9.1%}  all bit-exact")


def part2_row(args, n: int) -> list[dict] | None:
    """The default demo's 2-bit row: PART2's 16 -> 16 layer (same seed) in the 2-bit mode."""
    from model.capture import default_capture
    from tb.layer_cases import case_from_capture

    cap = default_capture(model_name=PART2, seed=args.seed)
    (ic, h, w), oc = cap.x_int.shape, cap.w_int.shape[0]
    rows = simulate(case_from_capture(cap), ["fast2"], "demo-part2" if n == CONFIG.row else f"demo-part2-{n}x{n}", n)
    if rows is not None:
        print(f"2-bit     {cap.layer_name} of {PART2} (seed {args.seed})  ({ic} -> {oc} channels, {h}x{w} output, "
              f"a_bit={cap.a_bit}: two activations per PE, MAC util of {2 * n * n} MACs per cycle; "
              f"float mean |diff| = {rows[0]['recovery_error']:.2e})")
        print_rows(rows)
    return rows


CLASSIC_MAP = (4, 4)   # the output map that make classic builds tb/classic_tb.v for (its out_h, out_w defaults)
MAX_LISTED_TILES = 4   # more oc tiles than this: classic_commands prints a shell loop over them


def classic_commands(cap, out) -> str:
    """How to run the files that export_capture wrote for `cap` in `out` on tb/classic_tb.v:
    the `make classic` command line(s), one per output-channel tile (OTILE=o when the layer
    has more than one, A_BIT=2 for a 2-bit layer), joined by && (a POSIX shell loop over
    OTILE above MAX_LISTED_TILES tiles); or, for a layer that bench does not take (an output
    map other than CLASSIC_MAP, stride or padding other than 1, more than one input-channel
    tile, whose sums it would not add) or a folder whose path classic_tb.v cannot open (make
    classic's rule, runner.icarus_can_open), a sentence saying so."""
    from model.export import export_geometry
    from tb import runner

    geo = export_geometry(cap)
    geometry = tuple(cap.out_int.shape[-2:])
    if geometry != CLASSIC_MAP or (cap.stride, cap.padding) != (1, 1) or geo.n_ic_tiles != 1:
        return (f"not for make classic, whose bench takes a {CLASSIC_MAP[0]}x{CLASSIC_MAP[1]} output map of one "
                f"input-channel tile (stride 1, padding 1): this layer's is {geometry[0]}x{geometry[1]}, "
                f"{geo.n_ic_tiles} input tile(s), stride {cap.stride}, padding {cap.padding}")
    if not runner.icarus_can_open(Path(out).resolve()):
        return ("not for make classic from this folder: its path holds a non-ASCII or control character, "
                "which classic_tb.v cannot open (Icarus mangles it); copy the files to a folder whose path has neither")
    # make classic takes a relative folder from the repository: from elsewhere, name it whole
    shown = out if Path(out).is_absolute() or Path.cwd().resolve() == runner.REPO else Path(out).resolve()
    make = f"make classic {shlex.quote(f'VECTORS={shown}')}{' A_BIT=2' if cap.a_bit == 2 else ''}"
    n = geo.n_oc_tiles
    if n > MAX_LISTED_TILES:     # a loop, not a line of 64 commands; its status: all passed
        return f"o=0; while [ $o -lt {n} ] && {make} OTILE=$o; do o=$((o + 1)); done; [ $o -eq {n} ]"
    return " && ".join(f"{make}{f' OTILE={o}' if n > 1 else ''}" for o in range(n))


def run(args) -> int:
    from model.capture import default_capture
    from model.export import export_capture
    from model.program import ALL_SCHEDULES, SCHEDULES, useful_macs
    from tb import runner
    from tb.core_layer import TOPLEVEL
    from tb.layer_cases import case_from_capture

    n = CONFIG.with_array(args.array).row
    source = f"checkpoint {args.checkpoint}" if args.checkpoint else f"{args.model or DEFAULT_MODEL} (seed {args.seed})"
    cap = default_capture(model_name=args.model, layer=args.layer, seed=args.seed, checkpoint=args.checkpoint,
                          data=args.data, image=args.image, act_quant=args.act_quant, echo=print)
    (ic, h, w), oc = cap.x_int.shape, cap.w_int.shape[0]
    shape = f"{ic} -> {oc} channels, {h}x{w} output, 3x3, padding {cap.padding}"
    macs = useful_macs(ic, oc, h, w)
    limit = -(-macs // (n * n))                      # cycles at the physical limit of n^2 MACs
    if limit > args.max_cycles:
        raise ModelError(f"{cap.layer_name} of {source} ({shape}): {macs:,} MACs need at least {limit:,} "
                         f"cycles per schedule on {n}x{n}, above --max-cycles {args.max_cycles:,}; pick a "
                         f"smaller layer with --layer, raise --max-cycles, or time it with make bench")
    print(f"== capture and export: {cap.layer_name} of {source} ({shape}) -> {args.out}")
    export_capture(cap, args.out)
    case = case_from_capture(cap)
    schedules = []
    for name, build in (ALL_SCHEDULES if cap.a_bit == 2 else SCHEDULES).items():
        try:
            build(cap.x_int, cap.w_int, array_size=n)
        except LayerError as exc:
            print(f"   {name}: not run: {exc}")
        else:
            schedules.append(name)
    if not schedules:
        raise ModelError(f"{cap.layer_name} of {source}: no schedule of the core can run it")
    print(f"== RTL simulation ({runner.simulator()}): one {n}x{n} core, {cap.layer_name} in "
          f"schedules {', '.join(schedules)}, back to back")
    name = "demo" if n == CONFIG.row else f"demo-{n}x{n}"
    rows = simulate(case, schedules, name, n)
    if rows is None:
        return 1

    print()
    print(f"layer     {cap.layer_name} of {source}  ({shape})")
    print(f"float     ReLU outputs from the RTL x act_delta x w_delta vs the model's own layer output: "
          f"mean |diff| = {rows[0]['recovery_error']:.2e}")
    print(f"{'dataflow':<9}{'schedule':<10}{'psums':>7}{'outputs':>9}{'cycles':>8}{'MAC util':>10}  result")
    print_rows(rows)
    if args.model is None and args.layer is None and args.checkpoint is None and n % 2 == 0 \
            and 2 * n <= CONFIG.max_array and part2_row(args, n) is None:
        return 1
    print("cycles: from operands in xmem / wmem to the last ReLU output on sfp_out,"
          " counted by the core's own counter")
    print("anchors: " + "; ".join(f"{k} {v}" for k, v in anchors(case["x_int"], case["w_int"], n)))
    if runner.waves_enabled():
        from tb.gtkw import GTKW, gtkw_for

        config = CONFIG.with_array(n)
        folder = runner.build_dir(name, config.parameters())
        save = GTKW
        if config != CONFIG:                  # the vector ranges follow the array size
            save = folder / "core.gtkw"
            save.write_text(gtkw_for(config))
        print(f"waveform: {runner.waves_path(folder, TOPLEVEL)} (open with: gtkwave <file> {save})")
    else:
        print("waveforms: rerun with WAVES=1 make demo")
    print(f"text vectors for the classic Verilog testbench: {args.out} ({classic_commands(cap, args.out)})")
    return 0


if __name__ == "__main__":
    from model.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
