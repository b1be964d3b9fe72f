#!/usr/bin/env bash
# One prepared GPU run for issue #16: train the project VGG16 with `model train --fast`,
# evaluate on the JPG test set, pack the checkpoint, and write the figures to $OUT.
#
# Here, before the call (data/ is git-ignored):
#     mkdir -p data && cp /work/shared/data/cifar10/cifar10-jpg.tar.gz data/
# Then one device call from the repository root:
#     run(command="bash tools/device_train.sh", carry=["data"], timeout_s=590)
# What comes back in $OUT: train.log, summary.json (per-epoch figures), model.q4 (the
# packed checkpoint, about 4.5 MB) and figures.json (accuracies, times, sizes, and the
# recovery error and level ranges of the 8->8 layer features.27 with the trained weights).
#
# Settings (environment): BUDGET seconds of training (default 360), EPOCHS maximum
# (default 200), BATCH (512), LR (0.1), SEED (0), PYTHON (python3), ARCHIVE; for a dry run
# on the CPU: DEVICE=cpu and LIMIT=N (the first N train and test images).
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
PYTHON=${PYTHON:-python3}
ARCHIVE=${ARCHIVE:-data/cifar10-jpg.tar.gz}
BUDGET=${BUDGET:-360}
EPOCHS=${EPOCHS:-200}
BATCH=${BATCH:-512}
LR=${LR:-0.1}
SEED=${SEED:-0}
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-}
LIMITS=()
[ -z "$LIMIT" ] || LIMITS=(--limit "$LIMIT" --test-limit "$LIMIT")
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1

[ -f "$ARCHIVE" ] || { echo "error: $ARCHIVE not found: copy cifar10-jpg.tar.gz there and carry its folder" >&2; exit 1; }
"$PYTHON" -c 'import sys, torch, PIL; print("torch", torch.__version__, "pillow", PIL.__version__,
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")'
tar xzf "$ARCHIVE" -C "$WORK"
set -o pipefail
"$PYTHON" -m model train --fast --data "$WORK" --device "$DEVICE" "${LIMITS[@]}" --epochs "$EPOCHS" --time-budget "$BUDGET" \
    --batch-size "$BATCH" --lr "$LR" --seed "$SEED" --out "$WORK/run" 2>&1 | tee "$OUT/train.log"
cp "$WORK/run/summary.json" "$OUT/summary.json"
"$PYTHON" -m model pack --checkpoint "$WORK/run/last.pt" --out "$OUT/model.q4" 2>&1 | tee -a "$OUT/train.log"
"$PYTHON" - "$WORK" "$OUT" "$DEVICE" "$LIMIT" <<'PY' 2>&1 | tee -a "$OUT/train.log"
import json, os, sys, time
import torch
from model.fast_train import evaluate_checkpoint, load_split

work, out, device, limit = sys.argv[1:]
summary = json.load(open(os.path.join(out, "summary.json")))
figures = {k: summary[k] for k in ("model", "epochs", "batch_size", "lr", "train_seconds", "epoch_seconds_with_eval",
                                   "load_seconds", "final_test_acc_fp32", "time_budget")}
figures["device"] = torch.cuda.get_device_name(0) if device == "cuda" else device
figures["torch"] = torch.__version__
figures["data"] = "cifar10-jpg.tar.gz (JPEG copies of CIFAR-10, not the original pixels), test split"
figures["seconds_per_epoch"] = [row["seconds"] for row in summary["history"]]
for key, path in (("full", os.path.join(work, "run", "last.pt")), ("packed", os.path.join(out, "model.q4"))):
    t = time.time()
    r = evaluate_checkpoint(path, work, device, int(limit) if limit else None)
    figures[f"{key}_eval"] = {"correct": r["correct"], "total": r["total"], "accuracy": r["accuracy"],
                              "bytes": os.path.getsize(path), "seconds": round(time.time() - t, 2)}
    print(f"{key} checkpoint: {r['correct']}/{r['total']} ({r['accuracy']:.2f}%), {os.path.getsize(path):,} bytes")
# The accelerator's reference layer with the trained weights, on JPG test image 0 of class 0.
from model.capture import capture_layer
from model.checkpoint import model_from_checkpoint
from model.data import normalize
model, _, _ = model_from_checkpoint(os.path.join(out, "model.q4"))
x, _ = load_split(work, "test", limit=1)
cap = capture_layer(model, "features.27", normalize(x), index=0)
figures["features.27"] = {"recovery_error": float(cap.recovery_error), "w_int": [int(cap.w_int.min()), int(cap.w_int.max())],
                          "x_int": [int(cap.x_int.min()), int(cap.x_int.max())], "act_delta": cap.act_delta,
                          "w_delta": cap.w_delta}
print("features.27 (8->8):", figures["features.27"])
json.dump(figures, open(os.path.join(out, "figures.json"), "w"), indent=1)
print("wrote", os.path.join(out, "figures.json"))
PY
