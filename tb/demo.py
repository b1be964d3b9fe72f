"""The main job: take the 8->8 layer from the quantized VGG16, run it through the RTL core
and report what was checked and how many cycles it took.

    systolic demo [--out DIR] [--seed S] [--array N] [--checkpoint PATH --data DIR --image N]

Steps: the layer is captured from the model once; its classic text vectors and tensors.npz
are written as by `systolic export`; the same tensors then run through one n x n core
(n = --array, default rtl/core_inst.vh's) in cocotb in every schedule, with every psum and
output compared bit for bit against the reference tiling.
"""
from __future__ import annotations

from model.hwconfig import CONFIG

# Published figures of the course's designs, all on an 8 x 8 array, for this layer (README "Two commands").
COURSE_ARRAY = 8
COURSE_ANCHORS = [("typical course designs (classic flow)", "900-1,900"),
                  ("best published course variant", "875")]


def add_arguments(p) -> None:
    p.add_argument("--out", default="build/demo", help="folder for the exported files")
    p.add_argument("--seed", type=int, default=0, help="seed of the model weights and synthetic image")
    p.add_argument("--array", type=int, default=CONFIG.row,
                   help=f"array size n of the n x n core (default {CONFIG.row}, rtl/core_inst.vh)")
    p.add_argument("--checkpoint", help="trained checkpoint (default: seeded weights)")
    p.add_argument("--data", help="CIFAR-10 folder, to use a real test image")
    p.add_argument("--image", type=int, default=0, help="test image index")


def anchors(x_int, w_int, n: int) -> list[tuple[str, str]]:
    """Reference points for the cycle counts: the course's (8 x 8 only), SCALE-Sim v2's
    analytic model and the physical limit (useful MACs on n^2 PEs) for this array."""
    from model.program import scalesim_cycles, useful_macs

    ic, h, w = x_int.shape
    oc = w_int.shape[0]
    macs = useful_macs(ic, oc, h, w)
    ws, os_ = (scalesim_cycles(ic, oc, h, w, flow, n) for flow in ("ws", "os"))
    found = COURSE_ANCHORS if n == COURSE_ARRAY and (ic, oc, h, w) == (8, 8, 4, 4) else []
    return found + [("SCALE-Sim v2 WS / OS", f"{ws:,} / {os_:,}"),
                    (f"physical limit ({macs:,} MACs on {n * n} MACs)", f"{-(-macs // (n * n)):,}")]


def run(args) -> int:
    from model.capture import default_capture
    from model.export import export_capture
    from model.program import SCHEDULES
    from tb import runner
    from tb.core_layer import run_case
    from tb.layer_cases import case_from_capture

    n = CONFIG.with_array(args.array).row
    print(f"== capture and export: features.27 of the project VGG16 (seed {args.seed}) -> {args.out}")
    cap = default_capture(seed=args.seed, checkpoint=args.checkpoint, data=args.data, image=args.image)
    export_capture(cap, args.out)
    case = case_from_capture(cap)
    print(f"== RTL simulation ({runner.simulator()}): one {n}x{n} core, the layer in every schedule, back to back")
    name = "demo" if n == CONFIG.row else f"demo-{n}x{n}"
    log = runner.SIM_BUILD / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    try:
        rows = run_case(case, ",".join(SCHEDULES), name, array_size=n, log_file=log)
    except AssertionError as exc:
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
        found = [l.strip() for l in lines if "Error" in l or "mismatch" in l][:5]
        print("FAILED: " + "\n        ".join(found or [str(exc)]) + f"\nsimulator log: {log}")
        return 1

    ic, h, w = case["x_int"].shape
    oc = case["w_int"].shape[0]
    print()
    print(f"layer     {rows[0]['layer']}  ({ic} -> {oc} channels, {h}x{w} output, 3x3, padding 1)")
    print(f"float     ReLU outputs from the RTL x act_delta x w_delta vs the model's own layer output: "
          f"mean |diff| = {rows[0]['recovery_error']:.2e}")
    print(f"{'dataflow':<9}{'schedule':<10}{'psums':>7}{'outputs':>9}{'cycles':>8}{'MAC util':>10}  result")
    for r in rows:
        print(f"{r['dataflow']:<9}{r['schedule']:<10}{r['psums_checked']:>7}{r['outputs_checked']:>9}"
              f"{r['cycles']:>8}{r['utilization']:>9.1%}  all bit-exact")
    print("cycles: from activations and weights in xmem to the last ReLU output on sfp_out,"
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
        print(f"waveform: {runner.waves_path(folder, 'core')} (open with: gtkwave <file> {save})")
    else:
        print("waveforms: rerun with WAVES=1 make demo")
    print(f"text vectors for the classic Verilog testbench: {args.out} (make classic)")
    return 0
