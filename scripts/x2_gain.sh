#!/usr/bin/env bash
# How much another full schedule (x2) adds to a baseline of EPOCHS epochs: the paper's test of a
# converged baseline (docs/results.md, "A converged baseline"), measured on a tuning split and
# on val, never chosen on val.
#
#     bash scripts/x2_gain.sh EPOCHS [SEED] [EXPERIMENT_DIR] [OUT_DIR] [DATASET]
#
# EXPERIMENT_DIR (default results/synthetic) is a finished default or quick run (results/quick): its
# data, counts and balanced model of SEED (default 0), the same in both. With DATASET longtail (the
# default), the baseline trains from that balanced model on all the training images for EPOCHS
# epochs (batch 8, lr 0.08, lr x0.1 after 8/12 and 11/12 of them, as the default's schedule), x2
# from the baseline for as many again. The tuning split has 12 instances of every class, drawn by
# the generator with seed 99. Both models are scored on it and on val; results go to OUT_DIR
# (default results/x2_gain), one folder per schedule. With DATASET balanced, the same test for the
# balanced model: it trains from nothing on the balanced set (batch 16, lr 0.04, as the default's
# pretrain schedule), and is scored on the tuning split alone (that set has no val).
set -euo pipefail
usage="usage: x2_gain.sh EPOCHS [SEED] [EXPERIMENT_DIR] [OUT_DIR] [longtail|balanced]"
epochs=${1:?$usage}
seed=${2:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
exp=${3:-$root/results/synthetic}
out=${4:-$root/results/x2_gain}
dataset=${5:-longtail}
for n in "$epochs" "$seed"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "EPOCHS and SEED must be whole numbers, got '$n'" >&2; exit 2; }
done
case $dataset in
    longtail) batch=8 lr=0.08 start=$exp/runs/balanced/baseline/seed$seed/model.pt splits="tuning val" ;;
    balanced) batch=16 lr=0.04 start="" splits=tuning out=$out/balanced ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
data=$exp/data/$dataset
tuning=$out/tuning
if [ ! -e "$tuning/val.json" ]; then
    python -c 'import sys; from bags.data.synthetic import tuning_split; tuning_split(*sys.argv[1:])' \
        "$data" "$tuning"
fi
settings=$(python -c 'import json, sys; n, s, b = map(int, sys.argv[1:4]); lr = float(sys.argv[4]); print(json.dumps(
    {"amp": "auto", "batch_size": b, "epochs": n, "lr": lr, "schedule": "step", "seed": s,
     "milestones": [round(n * 8 / 12), round(n * 11 / 12)], "warmup_iters": 50}))' \
    "$epochs" "$seed" "$batch" "$lr")
dir=$out/e${epochs}_seed$seed
mkdir -p "$dir"

run() {  # name, start model (none: from nothing), last layer
    local method start=()
    method=$(printf '{"last_layer": "%s", "loss": "softmax", "sampler": "uniform"}' "$3")
    [ -n "$2" ] && start=(--start "$2")
    [ -e "$dir/$1/model.pt" ] || python -m bags train --annotations "$data/train.json" \
        --images "$data/images" --counts "$exp/counts/$dataset.csv" --on-bad stop \
        --image-paths file_name --arch '{"name": "small", "image_size": 64}' \
        --settings "$settings" --method "$method" "${start[@]}" --out "$dir/$1/model.pt" \
        --epoch-log "$dir/$1/train_log.csv" --work-dir "$dir/$1/checkpoints" --threads 1 \
        2>"$dir/$1.log"
    for split in $splits; do
        local annotations=$data/val.json images=$data/images
        [ "$split" = tuning ] && annotations=$tuning/val.json images=$tuning/images
        python -m bags infer --model-file "$dir/$1/model.pt" --annotations "$annotations" \
            --images "$images" --on-bad stop --image-paths file_name --score-thresh 0 \
            --detections-per-img 300 --batch-size 16 --workers 0 --threads 1 \
            --out "$dir/$1/detections_$split.json" 2>>"$dir/$1.log"
        python -m bags evaluate --annotations "$annotations" \
            --detections "$dir/$1/detections_$split.json" --counts "$exp/counts/$dataset.csv" \
            --edges 10 100 1000 --detections-per-img 300 --backend faster \
            --out "$dir/$1/metrics_$split.json" 2>>"$dir/$1.log"
    done
}
mkdir -p "$dir/baseline" "$dir/x2"
run baseline "$start" fresh
run x2 "$dir/baseline/model.pt" loaded
python - "$dir" "$epochs" $splits <<'EOF'
import json, sys
from pathlib import Path
d, epochs, splits = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
m = {(r, s): json.loads((d / r / f"metrics_{s}.json").read_text())
     for r in ("baseline", "x2") for s in splits}
def gain(split): return f"{m['x2', split]['AP'] - m['baseline', split]['AP']:+.1f}"
def score(run): return " / ".join("-" if m[run, "tuning"][k] is None else
                                  f"{m[run, 'tuning'][k]:.1f}" for k in ("AP", "APr"))
print("| baseline schedule | baseline AP / APr (tuning) | x2 AP / APr (tuning) "
      "| x2 gain (tuning) | x2 gain (val) |")
print(f"| {epochs} epochs | {score('baseline')} | {score('x2')} | {gain('tuning')} | "
      f"{gain('val') if 'val' in splits else '-'} |")
EOF
