"""The whole network through the RTL core: ``systolic infer`` (``make infer``).

    systolic infer [--checkpoint PATH] [--model NAME|LAYOUT] [--seed S] [--data DIR]
                   [--image N | --images A:B[:STEP]] [--sim verilator|icarus] [--array N]
                   [--scheduler tcp://HOST:PORT] [--workers N] [--out build/infer]

Every QuantConv2d of the model runs on the core (tb.core_conv.CoreConv), in network order;
between two convs the core's SFP requantizes with thresholds derived from the model
(model.network) and the host only max-pools levels; the last conv's integers go to the host
head (BatchNorm, ReLU, pools, Linear). Each layer's core output is compared bit for bit with
the integer reference on the same input, and each conv's input levels with the ones PyTorch's
own forward pass feeds it.

Without ``--checkpoint`` the model is the seeded one, its activation thresholds and BatchNorm
statistics calibrated on synthetic images (as ``systolic demo``). Without ``--data`` the
images are synthetic (``model.data.synthetic_images(seed=--seed)``, no label).

One image runs in this process. ``--images`` runs its first image here (which builds every
layer's program template once, on disk under ``--out``) and the others on Dask distributed: a local cluster of
``--workers`` processes (default: one per core), or the running cluster at ``--scheduler``
(its workers need this project installed and ``--out`` on a shared filesystem);
``--workers 0`` runs the images one after the other here. Each finished image is appended to
``OUT/images.jsonl`` at once; a rerun with the same model, core and image pixels skips those.

Writes ``OUT/infer.json`` (per layer: cycles, MACs, outputs checked, mismatches, PyTorch
differences; per image: label, predictions) and ``OUT/infer.png`` (cycles and MAC
utilization per layer).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from .errors import LayerError, ModelError
from .hwconfig import CONFIG
from .options import CIFAR10_TEST_IMAGES, IMAGE, SEED, int_in, out_path
from .train import DEFAULT_MODEL, add_model_arguments

__all__ = ["add_arguments", "run", "parse_images", "CALIB_IMAGES", "CALIB_PERCENTILE", "SCHEDULER_TIMEOUT_S"]

CALIB_IMAGES, CALIB_PERCENTILE = 16, 99.0     # as systolic demo's seeded model (model.capture.default_capture)
SCHEDULER_TIMEOUT_S = 5
RESULTS = "images.jsonl"


def parse_images(text: str) -> range:
    """``--images A:B`` or ``A:B:STEP`` (Python slice, B exclusive) -> range of test image indices."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*(?::\s*(\d+)\s*)?", text)
    if not m:
        raise ValueError(f"expected A:B or A:B:STEP (image indices, B exclusive), got {text!r}")
    a, b, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
    if not a < b <= CIFAR10_TEST_IMAGES or step < 1:
        raise ValueError(f"expected 0 <= A < B <= {CIFAR10_TEST_IMAGES} and STEP >= 1, got {text!r}")
    return range(a, b, step)


def _images_arg(text: str) -> range:
    import argparse

    try:
        return parse_images(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", help="trained checkpoint (default: the seeded model, calibrated)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the model weights and synthetic images (default 0)")
    p.add_argument("--data", help="CIFAR-10 (batches, archive or image folders, as train reads): real test images")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--image", type=IMAGE, default=None, help="one test image index (default 0)")
    which.add_argument("--images", type=_images_arg, default=None, metavar="A:B[:STEP]",
                       help="test images A..B-1 (every STEP-th) on Dask: accuracy and agreement with PyTorch")
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"],
                   help="simulator of the program player (default verilator; icarus for small networks)")
    p.add_argument("--array", type=int_in(2, CONFIG.max_array), default=CONFIG.row,
                   help=f"array size n of the n x n core, 2..{CONFIG.max_array} (the {CONFIG.wcol_bits}-bit WCOL field; "
                        f"default {CONFIG.row}, rtl/core_inst.vh); a conv that cannot run on it is refused first")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--workers", type=int_in(0, 1024), default=None,
                   help="local Dask worker processes for --images (default: one per core; 0: no Dask)")
    p.add_argument("--out", type=out_path, default="build/infer", help="folder for infer.json, infer.png, images.jsonl, programs")
    add_model_arguments(p, "the checkpoint's, else vgg16_quant_project")


# --------------------------------------------------------------------------- the job
def load_model(checkpoint, model_name, seed: int, act_quant):
    """(model in eval mode, a one-line description): the checkpoint's, or the seeded model calibrated
    on CALIB_IMAGES synthetic images."""
    from .capture import calibrate_act_alphas
    from .checkpoint import model_from_checkpoint
    from .data import synthetic_images
    from .vgg import build_model

    if checkpoint is not None:
        model, _, label = model_from_checkpoint(checkpoint, model_name, act_quant)
        what = f"{label} from {checkpoint}"
    else:
        model = build_model(model_name or DEFAULT_MODEL, seed=seed, act_quant=act_quant or "course")
        calib, _ = synthetic_images(CALIB_IMAGES, seed=seed + 1000)
        calibrate_act_alphas(model, calib, CALIB_PERCENTILE)
        what = f"{model.layout.label} (seed {seed}, calibrated on {CALIB_IMAGES} synthetic images)"
    return model.eval(), what


def load_images(data, indices, seed: int):
    """[(index, normalized float (3, 32, 32), label or None)] and where they came from."""
    from .data import normalize, open_cifar10, synthetic_images

    if data is None:
        x, _ = synthetic_images(max(indices) + 1, seed=seed)
        return [(i, x[i], None) for i in indices], f"synthetic images (seed {seed})"
    source = open_cifar10(data)
    out = []
    for i in indices:
        img, label, _ = source.image("test", i)
        out.append((i, normalize(img.unsqueeze(0))[0], label))
    return out, f"CIFAR-10 test images of {source.describe()}"


_CORES: dict = {}


def core_for(sim: str, array: int, build: str):
    """One CoreConv per (simulator, array, build folder) and process: the player binary and the
    program templates live in ``build``, each process plays in a run folder of its own."""
    from tb.core_conv import CoreConv

    key = (sim, array, build)
    if key not in _CORES:
        _CORES[key] = CoreConv(sim=sim, array_size=array, build=Path(build))
    return _CORES[key]


def image_job(net, sim: str, array: int, build: str, index: int, image, label, quiet: bool = False):
    """One image through the core (a Dask task): the result as a JSON-ready dict. ``quiet``: without
    the player's progress lines (the progress bar counts images)."""
    import contextlib
    import io
    from dataclasses import asdict

    from .network import run_image

    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        return asdict(run_image(net, image, core_for(sim, array, build), index, label))


# What a result depends on besides the model and the data: the hardware, the player and the
# program builders. An edit to any of them runs every image afresh.
_REPO = Path(__file__).resolve().parent.parent
_CORE_SOURCES = ("rtl/*.v", "rtl/*.vh", "tb/core_player.v", "tb/core_top.vh", "tb/core_conv.py", "tb/player.py",
                 "model/program/*.py", "model/network.py", "model/requant.py", "model/tiling.py")


def _run_key(args, model_what: str, net) -> str:
    """Identifies a run's results: the model (its weights and thresholds), data, core (its
    configuration and the sources of the RTL, the player and the program builders)."""
    h = hashlib.sha256()
    for pattern in _CORE_SOURCES:
        for path in sorted(_REPO.glob(pattern)):
            h.update(path.name.encode() + path.read_bytes())
    for stage in net.stages:
        h.update(stage.w_int.tobytes())
        if stage.requant is not None:
            h.update(stage.requant.thresholds.tobytes())
    h.update(repr((model_what, args.data and str(Path(args.data).resolve()), args.seed, args.sim,
                   args.array)).encode())
    return h.hexdigest()[:16]


def image_digest(image) -> str:
    """What a saved result's image is: a digest of its pixels (the normalized float32 image), so
    an image file replaced under the same index runs afresh."""
    return hashlib.sha256(image.numpy().tobytes()).hexdigest()[:16]


def _finished(path: Path, key: str, wanted: dict) -> dict:
    """The results in ``path`` of run ``key`` whose index and image digest are in ``wanted``
    ({index: image_digest})."""
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue                       # a line cut short by an interrupted run: redone
            if rec.get("run") == key and rec.get("index") in wanted and rec.get("image") == wanted[rec["index"]]:
                done[rec["index"]] = rec
    return done


def connect(address: str):
    """A client of the running Dask scheduler at ``address``; ModelError (one line) when none
    answers within SCHEDULER_TIMEOUT_S."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ModelError(f"--scheduler {address}: no Dask scheduler answers within {SCHEDULER_TIMEOUT_S} s "
                         f"({type(e).__name__})") from None


def _local_cluster(workers: int):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=50)
    return Client(cluster), cluster


def run_all(args, net, images, key: str, out: Path, client=None) -> tuple[list[dict], set]:
    """Every image not yet in OUT/images.jsonl: here one after the other, or on Dask (``client``,
    else a local cluster of --workers processes). (all results in order, the indices run now)"""
    from tqdm import tqdm

    path = out / RESULTS
    digests = {i: image_digest(image) for i, image, _ in images}
    done = _finished(path, key, digests)
    todo = [item for item in images if item[0] not in done]
    build = str(out.resolve())      # the same folder for workers started elsewhere
    if done:
        print(f"   {len(done)} image(s) already in {path} (same model, pixels, core and RTL sources): skipped, "
              "not timed; delete that file or use another --out to run them again")
    with path.open("a") as log, tqdm(total=len(todo), desc="images", unit="img", disable=len(todo) < 2) as bar:
        def record(rec):
            rec["run"], rec["image"] = key, digests[rec["index"]]
            log.write(json.dumps(rec) + "\n")
            log.flush()
            done[rec["index"]] = rec
            bar.update(1)

        serial = client is None and (len(images) == 1 or args.workers == 0)
        # The first image runs here: it builds the player and every layer's program template once
        # (on disk under --out), before the workers read them.
        quiet = len(images) > 1
        for index, image, label in todo[:None if serial else 1]:
            record(image_job(net, args.sim, args.array, build, index, image, label, quiet=quiet))
        if not serial and len(todo) > 1:
            from distributed import as_completed

            cluster = None
            if client is None:
                client, cluster = _local_cluster(args.workers or os.cpu_count() or 1)
            try:
                shared = client.scatter(net, broadcast=True)
                futures = [client.submit(image_job, shared, args.sim, args.array, build, i, img, label, True,
                                         pure=False) for i, img, label in todo[1:]]
                for fut in as_completed(futures):
                    record(fut.result())
            finally:
                if cluster is not None:
                    client.close()
                    cluster.close()
    return [done[i] for i, _, _ in images], {i for i, _, _ in todo}


# --------------------------------------------------------------------------- report
def summarize(net, results: list[dict], wall_s: float, timing: dict) -> dict:
    """infer.json: per layer (summed over images, cycles of one image), totals, images."""
    layers = []
    for k, stage in enumerate(net.stages):
        per = [r["layers"][k] for r in results]
        layers.append(dict(
            name=stage.name, in_channels=stage.in_channels, out_channels=stage.out_channels,
            height=stage.height, width=stage.width, dataflow=per[0]["dataflow"],
            cycles=max(p["cycles"] for p in per), macs=stage.macs,
            outputs_checked=sum(p["outputs_checked"] for p in per),
            mismatches=sum(p["mismatches"] for p in per), torch_differences=sum(p["torch_differences"] for p in per),
            errors=sum(p["errors"] for p in per), pools_after=stage.pools))
    images = []
    for r in results:
        item = dict(index=r["index"], prediction_hw=r["prediction_hw"], prediction_torch=r["prediction_torch"],
                    prediction_reference=r["prediction_reference"])
        if r["label"] is not None:
            item["label"] = r["label"]
        images.append(item)
    return dict(layers=layers, total_cycles=sum(l["cycles"] for l in layers),
                total_macs=sum(l["macs"] for l in layers), images=images, wall_s=wall_s, time_s=timing)


def print_report(summary: dict, results: list[dict], array: int) -> None:
    from .data import CLASSES

    pes = array * array
    print(f"\n{'layer':<12}{'shape (in->out, HxW)':<22}{'flow':<6}{'cycles':>11}{'MAC util':>10}"
          f"{'outputs':>11}{'mismatch':>10}{'vs torch':>10}")
    for l in summary["layers"]:
        shape = f"{l['in_channels']}->{l['out_channels']}, {l['height']}x{l['width']}"
        util = l["macs"] / (pes * l["cycles"]) if l["cycles"] else 0.0
        print(f"{l['name']:<12}{shape:<22}{l['dataflow']:<6}{l['cycles']:>11,}{util:>10.1%}"
              f"{l['outputs_checked']:>11,}{l['mismatches']:>10,}{l['torch_differences']:>10,}")
    total_util = summary["total_macs"] / (pes * summary["total_cycles"]) if summary["total_cycles"] else 0.0
    print(f"{'total':<12}{'':<22}{'':<6}{summary['total_cycles']:>11,}{total_util:>10.1%}"
          f"{sum(l['outputs_checked'] for l in summary['layers']):>11,}"
          f"{sum(l['mismatches'] for l in summary['layers']):>10,}"
          f"{sum(l['torch_differences'] for l in summary['layers']):>10,}")
    print("cycles: the core's own counter per conv and image, xmem loads included; MAC util = MACs / "
          f"({pes} x cycles); vs torch: input levels that differ from PyTorch's forward pass")
    t = summary["time_s"]
    print(f"wall {summary['wall_s']:.1f} s: preparing (model, thresholds, images) {t['preparing']:.1f} s, "
          f"compiling the player {t['compiling']:.1f} s, building {t['building']:.1f} s, simulating {t['simulating']:.1f} s ({t['simulating_cpu']:.1f} CPU-s), "
          f"checking {t['checking']:.1f} s (overlapping the simulation)"
          + (" (summed over the Dask workers)" if t["parallel"] else ""))
    for r in results[:5]:
        hw = sorted(range(len(r["logits_hw"])), key=lambda c: -r["logits_hw"][c])[:3]
        tq = sorted(range(len(r["logits_torch"])), key=lambda c: -r["logits_torch"][c])[:3]
        label = f", label {CLASSES[r['label']]}" if r["label"] is not None else ""
        print(f"image {r['index']}{label}: hardware top 3 " + ", ".join(f"{CLASSES[c]} {r['logits_hw'][c]:.3f}" for c in hw)
              + " | PyTorch " + ", ".join(f"{CLASSES[c]} {r['logits_torch'][c]:.3f}" for c in tq))
    if len(results) > 5:
        print(f"... {len(results) - 5} more images in infer.json")
    n = len(results)
    labelled = [r for r in results if r["label"] is not None]
    agree = sum(r["prediction_hw"] == r["prediction_torch"] for r in results)
    same = sum(r["prediction_hw"] == r["prediction_reference"] for r in results)
    line = f"{n} image(s): hardware = integer reference on {same}/{n}, hardware = PyTorch on {agree}/{n}"
    if labelled:
        correct = sum(r["prediction_hw"] == r["label"] for r in labelled)
        line += f", hardware accuracy {correct}/{len(labelled)} ({correct / len(labelled):.1%})"
    print(line)


def plot(summary: dict, array: int, path: Path) -> None:
    """Cycles (bars, log scale) and MAC utilization (line) per conv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = summary["layers"]
    names = [l["name"].replace("features.", "f.") for l in layers]
    util = [100 * l["macs"] / (array * array * l["cycles"]) if l["cycles"] else 0 for l in layers]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(layers)), 4))
    ax.bar(names, [l["cycles"] for l in layers], color="tab:blue")
    ax.set_yscale("log")
    ax.set_ylabel("cycles (log)", color="tab:blue")
    ax.tick_params(axis="x", rotation=45)
    ax2 = ax.twinx()
    ax2.plot(names, util, "o-", color="tab:red")
    ax2.set_ylim(0, 105)
    ax2.set_ylabel("MAC utilization (%)", color="tab:red")
    ax.set_title(f"{summary['total_cycles']:,} cycles, {len(layers)} convs on the {array}x{array} core")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args) -> int:
    t_start = time.perf_counter()
    indices = args.images if args.images is not None else range(args.image or 0, (args.image or 0) + 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    client = connect(args.scheduler) if args.scheduler else None       # fail fast, before the model
    try:
        return _run(args, indices, out, client, t_start)
    finally:
        if client is not None:
            client.close()


def _run(args, indices, out: Path, client, t_start: float) -> int:
    from .network import Network

    images, source = load_images(args.data, indices, args.seed)
    model, what = load_model(args.checkpoint, args.model, args.seed, args.act_quant)
    net = Network(model)
    try:
        net.check_array(args.array)     # before the header, the player and any program are built
    except LayerError as e:
        raise LayerError(f"--array {args.array}: {e}") from None
    key = _run_key(args, what, net)
    prep = time.perf_counter() - t_start
    print(f"model   {what}, activation quantizer {model.act_quant}")
    print(f"images  {len(images)} from {source}")
    print(f"core    {args.array}x{args.array}, {args.sim} player, {len(net.stages)} convs; thresholds from the model "
          f"in the SFP, max-pools on the host")
    t_core = time.perf_counter()
    core_for(args.sim, args.array, str(out.resolve()))      # compiles the player when it is stale
    compiling = time.perf_counter() - t_core
    results, fresh = run_all(args, net, images, key, out, client)
    per_layer = [l for r in results if r["index"] in fresh for l in r["layers"]]
    timing = dict(preparing=prep, compiling=compiling, building=sum(l["build_s"] for l in per_layer),
                  simulating=sum(l["sim_s"] for l in per_layer), simulating_cpu=sum(l["sim_cpu_s"] for l in per_layer),
                  checking=sum(l["check_s"] for l in per_layer),
                  parallel=client is not None or (len(fresh) > 1 and args.workers != 0))
    summary = summarize(net, results, 0.0, timing)
    plot(summary, args.array, out / "infer.png")
    summary["wall_s"] = time.perf_counter() - t_start
    print_report(summary, results, args.array)
    (out / "infer.json").write_text(json.dumps(summary, indent=2))
    print(f"written {out / 'infer.json'}, {out / 'infer.png'}, per image {out / RESULTS}")
    bad = [l["name"] for l in summary["layers"] if l["mismatches"] or l["errors"]]
    wrong = [r["index"] for r in results if r["prediction_hw"] != r["prediction_reference"]]
    if bad or wrong:
        raise ModelError(f"the core differs from the integer reference: layers {', '.join(bad) or '-'}, "
                         f"predictions of images {', '.join(map(str, wrong)) or '-'}")
    return 0
