"""The main job: take the 8->8 layer from the quantized VGG16, run it through the RTL core
and report what was checked and how many cycles it took.

    python tb/demo.py [--out DIR] [--seed S] [--checkpoint PATH --data DIR --image N]

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

ANCHORS = [("typical course designs (classic flow)", "900-1,900"),
           ("best published course variant", "875"),
           ("SCALE-Sim v2 WS / OS", "341 / 171"),
           ("physical limit (9,216 MACs on 64 MACs)", "144")]


def main(argv=None) -> int:
    p = OneLineArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="build/demo", help="folder for the exported files")
    p.add_argument("--seed", type=int, default=0, help="seed of the model weights and synthetic image")
    p.add_argument("--checkpoint", help="trained checkpoint (default: seeded weights)")
    p.add_argument("--data", help="CIFAR-10 folder, to use a real test image")
    p.add_argument("--image", type=int, default=0, help="test image index")
    args = p.parse_args(argv)

    import runner
    from layer_cases import case_from_capture
    from model.capture import default_capture
    from model.export import export_capture
    from model.program import SCHEDULES
    from test_core_layer import TOPLEVEL, run_case

    print(f"== capture and export: features.27 of the project VGG16 (seed {args.seed}) -> {args.out}")
    cap = default_capture(seed=args.seed, checkpoint=args.checkpoint, data=args.data, image=args.image)
    export_capture(cap, args.out)
    case = case_from_capture(cap)
    print(f"== RTL simulation ({os.environ.get('SIM', 'icarus')}): one core, the layer in every schedule, back to back")
    log = Path("sim_build") / "demo.log"
    log.parent.mkdir(exist_ok=True)
    try:
        rows = run_case(case, ",".join(SCHEDULES), "demo", log_file=log.resolve())
    except AssertionError as exc:
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
        found = [l.strip() for l in lines if "Error" in l or "mismatch" in l][:5]
        print("FAILED: " + "\n        ".join(found or [str(exc)]) + f"\nsimulator log: {log}")
        return 1

    print()
    print(f"layer     {rows[0]['layer']}  (8 -> 8 channels, 4x4 output, 3x3, padding 1)")
    print(f"float     ReLU outputs from the RTL x act_delta x w_delta vs the model's own layer output: "
          f"mean |diff| = {rows[0]['recovery_error']:.2e}")
    print(f"{'dataflow':<9}{'schedule':<10}{'psums':>7}{'outputs':>9}{'cycles':>8}{'MAC util':>10}  result")
    for r in rows:
        print(f"{r['dataflow']:<9}{r['schedule']:<10}{r['psums_checked']:>7}{r['outputs_checked']:>9}"
              f"{r['cycles']:>8}{r['utilization']:>9.1%}  all bit-exact")
    print("cycles: from activations and weights in xmem to the last ReLU output on sfp_out,"
          " counted by the core's own counter")
    print("anchors: " + "; ".join(f"{name} {value}" for name, value in ANCHORS))
    if os.environ.get("WAVES", "0") not in ("", "0"):
        print(f"waveform: {runner.waves_path(runner.build_dir('demo', {}), TOPLEVEL)} "
              "(open with: gtkwave <file> tb/core.gtkw)")
    else:
        print("waveforms: rerun with WAVES=1 make demo")
    print(f"text vectors for the classic Verilog testbench: {args.out} (make classic)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
