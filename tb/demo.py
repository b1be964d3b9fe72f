"""The main job: take the 8->8 layer from the quantized VGG16, run it through the RTL core
and report what was checked and how many cycles it took.

    python tb/demo.py [--out DIR] [--seed S] [--model NAME|LAYOUT] [--layer NAME]
                      [--checkpoint PATH --data DIR --image N] [--act-quant course|unsigned]

Steps: the layer is captured from the model once; its classic text vectors and tensors.npz
are written as by `python -m model export`; the same tensors then run through one core in
cocotb in every schedule, with every psum and output compared bit for bit against the
reference tiling.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from model.cli import OneLineArgumentParser, run_cli  # noqa: E402  (errors in one line)
from model.errors import LayerError, ModelError  # noqa: E402
from model.options import IMAGE, SEED, int_in  # noqa: E402
from model.train import DEFAULT_MODEL, add_model_arguments  # noqa: E402

MAX_CYCLES = 20_000    # the 8->8 layer: 144 at the limit, 559 in the classic schedule
ANCHORS = [("typical course designs (classic flow)", "900-1,900"),
           ("best published course variant", "875"),
           ("SCALE-Sim v2 WS / OS", "341 / 171"),
           ("physical limit (9,216 MACs on 64 MACs)", "144")]


def main(argv=None) -> int:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="build/demo", help="folder for the exported files")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the model weights and synthetic image")
    p.add_argument("--layer", default=None, metavar="NAME",
                   help="conv layer, name or index (default: the model's demo layer)")
    p.add_argument("--checkpoint", help="trained checkpoint (default: seeded weights)")
    p.add_argument("--data", help="CIFAR-10 folder, to use a real test image")
    p.add_argument("--image", type=IMAGE, default=0, help="test image index")
    p.add_argument("--max-cycles", type=int_in(1), default=MAX_CYCLES, metavar="N",
                   help=f"refuse a layer whose every schedule needs more than N cycles, i.e. more than "
                        f"64 x N MACs (default {MAX_CYCLES:,}: minutes of simulation)")
    add_model_arguments(p, "the checkpoint's, else vgg16_quant_project")
    args = p.parse_args(argv)

    import runner
    from layer_cases import case_from_capture
    from model.capture import default_capture
    from model.export import export_capture
    from model.program import SCHEDULES
    from test_core_layer import run_case

    source = f"checkpoint {args.checkpoint}" if args.checkpoint else f"{args.model or DEFAULT_MODEL} (seed {args.seed})"
    cap = default_capture(model_name=args.model, layer=args.layer, seed=args.seed,
                          checkpoint=args.checkpoint, data=args.data, image=args.image, act_quant=args.act_quant, echo=print)
    (ic, h, w), oc = cap.x_int.shape, cap.w_int.shape[0]
    shape = f"{ic} -> {oc} channels, {h}x{w} output, 3x3, padding {cap.padding}"
    macs = ic * oc * 9 * h * w
    limit = -(-macs // 64)                           # cycles at the physical limit of 64 MACs
    if limit > args.max_cycles:
        raise ModelError(f"{cap.layer_name} of {source} ({shape}): {macs:,} MACs need at least {limit:,} "
                         f"cycles per schedule, above --max-cycles {args.max_cycles:,}; pick a smaller "
                         f"layer with --layer, raise --max-cycles, or time it with make bench")
    print(f"== capture and export: {cap.layer_name} of {source} ({shape}) -> {args.out}")
    export_capture(cap, args.out)
    case = case_from_capture(cap)
    schedules = []
    for name, build in SCHEDULES.items():
        try:
            build(cap.x_int, cap.w_int)
        except LayerError as exc:
            print(f"   {name}: not run: {exc}")
        else:
            schedules.append(name)
    if not schedules:
        raise ModelError(f"{cap.layer_name} of {source}: no schedule of the core can run it")
    print(f"== RTL simulation ({os.environ.get('SIM', 'icarus')}): one core, {cap.layer_name} in "
          f"schedules {', '.join(schedules)}, back to back")
    log = Path("sim_build") / "demo.log"
    log.parent.mkdir(exist_ok=True)
    try:
        rows = run_case(case, ",".join(schedules), "demo", log_file=log.resolve())
    except AssertionError as exc:
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
        found = [l.strip() for l in lines if "mismatch" in l.lower() or "AssertionError" in l][:5]
        print("FAILED: " + "\n        ".join(found or [str(exc).splitlines()[0]]) + f"\nsimulator log: {log}")
        return 1

    print()
    print(f"layer     {cap.layer_name} of {source}  ({shape})")
    print(f"float     ReLU outputs from the RTL x act_delta x w_delta vs the model's own layer output: "
          f"mean |diff| = {rows[0]['recovery_error']:.2e}")
    print(f"{'dataflow':<9}{'schedule':<10}{'psums':>7}{'outputs':>9}{'cycles':>8}{'MAC util':>10}  result")
    for r in rows:
        print(f"{r['dataflow']:<9}{r['schedule']:<10}{r['psums_checked']:>7}{r['outputs_checked']:>9}"
              f"{r['cycles']:>8}{r['utilization']:>9.1%}  all bit-exact")
    print("cycles: from activations and weights in xmem to the last ReLU output on sfp_out,"
          " counted by the core's own counter")
    if (ic, oc, h, w) == (8, 8, 4, 4):               # the anchors are figures of this layer
        print("anchors: " + "; ".join(f"{name} {value}" for name, value in ANCHORS))
    else:
        print(f"physical limit ({macs:,} MACs on 64 MACs): {limit:,} cycles")
    if os.environ.get("WAVES", "0") not in ("", "0"):
        print(f"waveform: {runner.waves_path(runner.build_dir('demo', {}), 'core')} "
              "(open with: gtkwave <file> tb/core.gtkw)")
    else:
        print("waveforms: rerun with WAVES=1 make demo")
    print(f"text vectors for the classic Verilog testbench: {args.out} (make classic)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
