#!/usr/bin/env bash
# The GPU check, one script on a machine with one GPU and the project's requirements installed:
#   1. the paper recipe's detector (R50-FPN + BAGS) at 1333x800, fp32 and bf16: training and
#      inference images per second and peak GPU memory (benchmarks/r50_fpn_speed.py), with
#      torchvision's losses and the LVIS configs' side by side, at 2 images per step and at the
#      configs' 16 on one GPU (r50_fpn_16.json, fp32); and the per-class NMS of an LVIS image's
#      detections, both ways (benchmarks/nms_speed.py);
#   2. the default DAG with its training and inference jobs on the GPU (--resources
#      gpu=JOBS_PER_GPU: that many such jobs share the one GPU, the other jobs on the CPU
#      cores), as experiment "synthetic_gpu" so that results/synthetic stays as it is. Its wall
#      clock is printed, with the per-rule table.
#
#     bash benchmarks/gpu_check.sh OUT_DIR [DAG_SECONDS] [JOBS_PER_GPU]
#
# DAG_SECONDS (default: no limit) stops the DAG with SIGINT after that long; run the script
# again to go on where it stopped (trainings resume from their checkpoints) and add the wall
# clocks. Everything goes to OUT_DIR: r50_fpn.json, r50_fpn_16.json, nms.txt, dag.log,
# dag_times.md, dag.txt,
# logs.tar.gz (the jobs' logs and benchmark files) and gpu.yaml (the layer over config.yaml).
set -u
out=${1:?usage: gpu_check.sh OUT_DIR [DAG_SECONDS] [JOBS_PER_GPU]}
limit=${2:-0}
jobs=${3:-1}
[[ $limit =~ ^[0-9]+$ ]] || { echo "DAG_SECONDS must be a whole number, got '$limit'" >&2; exit 2; }
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "JOBS_PER_GPU must be 1 or more, got '$jobs'" >&2; exit 2; }
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision",
torchvision.__version__, "cuda", torch.cuda.is_available())'
echo "CPU cores: $(nproc)"

if [ ! -e "$out/r50_fpn.json" ]; then
    timeout 300 python benchmarks/r50_fpn_speed.py --steps 40 --warmup 10 \
        --losses torchvision reference --out "$out/r50_fpn.json" ||
        echo "r50_fpn_speed.py failed (status $?)"
fi
if [ ! -e "$out/r50_fpn_16.json" ]; then
    timeout 300 python benchmarks/r50_fpn_speed.py --steps 8 --warmup 3 --train-batch 16 \
        --amp none --losses torchvision reference --out "$out/r50_fpn_16.json" ||
        echo "r50_fpn_speed.py (16 images per step) failed (status $?)"
fi

if [ ! -e "$out/nms.txt" ]; then
    timeout 120 python benchmarks/nms_speed.py --images 5 | tee "$out/nms.txt"
fi

stop=()
[ "$limit" -gt 0 ] && stop=(timeout -s INT -k 30 "$limit")
touch "$out/dag.log"
before=$(wc -l <"$out/dag.log")
start=$(date +%s.%N)
printf 'experiment: synthetic_gpu\nresources: {gpu: 1}\n' >"$out/gpu.yaml"
"${stop[@]}" snakemake --cores all --resources "gpu=$jobs" --rerun-incomplete --keep-going \
    --configfile config.yaml "$out/gpu.yaml" >>"$out/dag.log" 2>&1
status=$?
seconds=$(python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" \
    "$start" "$(date +%s.%N)")
done_line=$(tail -n +$((before + 1)) "$out/dag.log" | grep -E '[0-9]+ of [0-9]+ steps' | tail -1)
echo "DAG ($jobs jobs per GPU): status $status, ${seconds} s of wall clock in this run; ${done_line:-no job done}" |
    tee -a "$out/dag.txt"
python benchmarks/dag_times.py results/synthetic_gpu >"$out/dag_times.md" 2>&1
tar -czf "$out/logs.tar.gz" -C results/synthetic_gpu logs benchmarks 2>/dev/null
head -30 "$out/dag_times.md"
