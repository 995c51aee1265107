#!/usr/bin/env bash
# How much another full schedule (x2) adds to a baseline of EPOCHS epochs: the paper's test of a
# converged baseline (docs/results.md, "A converged baseline"), measured on a tuning split and
# on val, never chosen on val.
#
#     bash scripts/x2_gain.sh EPOCHS [SEED] [EXPERIMENT_DIR] [OUT_DIR]
#
# EXPERIMENT_DIR (default results/synthetic) is a finished default run: its data, counts and
# balanced model of SEED (default 0). The baseline trains from that balanced model on all the
# training images for EPOCHS epochs (batch 8, lr 0.08, lr x0.1 after 8/12 and 11/12 of them,
# as the default's schedule), x2 from the baseline for as many again. The tuning split has 12
# instances of every class, drawn by the generator with seed 99. Both models are scored on it
# and on val; results go to OUT_DIR (default results/x2_gain), one folder per schedule.
set -euo pipefail
epochs=${1:?usage: x2_gain.sh EPOCHS [SEED] [EXPERIMENT_DIR] [OUT_DIR]}
seed=${2:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
exp=${3:-$root/results/synthetic}
out=${4:-$root/results/x2_gain}
for n in "$epochs" "$seed"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "EPOCHS and SEED must be whole numbers, got '$n'" >&2; exit 2; }
done
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
data=$exp/data/longtail
tuning=$out/tuning
if [ ! -e "$tuning/val.json" ]; then
    python - "$data/train.json" "$tuning" <<'EOF'
import json, sys
from pathlib import Path
from bags.data.synthetic import SyntheticSpec, generate
categories = sorted(json.loads(Path(sys.argv[1]).read_text())["categories"], key=lambda c: c["id"])
names = [c["name"] for c in categories]
generate(SyntheticSpec([[len(names), 1, 1]], val_per_class=12, seed=99), Path(sys.argv[2]), names)
# The long-tailed set's categories, so that the frequencies (APr, APc, APf) are its own.
split = Path(sys.argv[2]) / "val.json"
split.write_text(json.dumps({**json.loads(split.read_text()), "categories": categories}))
EOF
fi
settings=$(python -c 'import json, sys; n, s = int(sys.argv[1]), int(sys.argv[2]); print(json.dumps(
    {"amp": "auto", "batch_size": 8, "epochs": n, "lr": 0.08, "schedule": "step", "seed": s,
     "milestones": [round(n * 8 / 12), round(n * 11 / 12)], "warmup_iters": 50}))' "$epochs" "$seed")
dir=$out/e${epochs}_seed$seed
mkdir -p "$dir"

run() {  # name, start model, last layer
    local method
    method=$(printf '{"last_layer": "%s", "loss": "softmax", "sampler": "uniform"}' "$3")
    [ -e "$dir/$1/model.pt" ] || python -m bags train --annotations "$data/train.json" \
        --images "$data/images" --counts "$exp/counts/longtail.csv" --on-bad stop \
        --image-paths file_name --arch '{"name": "small", "image_size": 64}' \
        --settings "$settings" --method "$method" --start "$2" --out "$dir/$1/model.pt" \
        --epoch-log "$dir/$1/train_log.csv" --work-dir "$dir/$1/checkpoints" --threads 1 \
        2>"$dir/$1.log"
    for split in tuning val; do
        local annotations=$data/val.json images=$data/images
        [ "$split" = tuning ] && annotations=$tuning/val.json images=$tuning/images
        python -m bags infer --model-file "$dir/$1/model.pt" --annotations "$annotations" \
            --images "$images" --on-bad stop --image-paths file_name --score-thresh 0 \
            --detections-per-img 300 --batch-size 16 --workers 0 --threads 1 \
            --out "$dir/$1/detections_$split.json" 2>>"$dir/$1.log"
        python -m bags evaluate --annotations "$annotations" \
            --detections "$dir/$1/detections_$split.json" --counts "$exp/counts/longtail.csv" \
            --edges 10 100 1000 --detections-per-img 300 --backend faster \
            --out "$dir/$1/metrics_$split.json" 2>>"$dir/$1.log"
    done
}
mkdir -p "$dir/baseline" "$dir/x2"
run baseline "$exp/runs/balanced/baseline/seed$seed/model.pt" fresh
run x2 "$dir/baseline/model.pt" loaded
python - "$dir" "$epochs" <<'EOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
m = {(r, s): json.loads((d / r / f"metrics_{s}.json").read_text())
     for r in ("baseline", "x2") for s in ("tuning", "val")}
print("| baseline schedule | baseline AP / APr (tuning) | x2 AP / APr (tuning) "
      "| x2 gain (tuning) | x2 gain (val) |")
print(f"| {sys.argv[2]} epochs | {m['baseline', 'tuning']['AP']:.1f} / "
      f"{m['baseline', 'tuning']['APr']:.1f} | {m['x2', 'tuning']['AP']:.1f} / "
      f"{m['x2', 'tuning']['APr']:.1f} | "
      f"{m['x2', 'tuning']['AP'] - m['baseline', 'tuning']['AP']:+.1f} | "
      f"{m['x2', 'val']['AP'] - m['baseline', 'val']['AP']:+.1f} |")
EOF
