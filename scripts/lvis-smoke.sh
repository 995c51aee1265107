#!/usr/bin/env bash
# The real-LVIS DAG end to end on a CPU, against an LVIS-shaped mini set served on 127.0.0.1:
#
#   bash scripts/lvis-smoke.sh v0.5|v1
#
# 1. makes the mini set once (python scripts/lvis_mini.py make) and serves it on a free port;
# 2. runs configs/lvis_<version>.yaml with configs/lvis_smoke.yaml, a generated downloads
#    section (the served files' URLs, sizes and sha256) and configs/lvis_smoke_trim.yaml (one
#    row of each code path) layered over it, in that order;
# 3. checks the outputs (BAGS logits, metrics of every run, tables, figures, claims).
#
# Settings (environment): LVIS_STATS, the folder of lvis_<version>_train_category_stats.json
# (default data/lvis in the repository); LVIS_MINI, where the mini set is made
# (default resources/lvis-mini); SMOKE_DIR, the run's working directory (default
# results/lvis-smoke/<version>); SMOKE_CORES (default 2); SMOKE_METHODS=all runs the whole
# methods table (no trimming); SMOKE_CONFIG, one more config file layered last.
set -euo pipefail

version=${1:-}
if [[ $version != v0.5 && $version != v1 ]]; then
    echo "usage: bash scripts/lvis-smoke.sh v0.5|v1" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
stats=$(realpath -m "${LVIS_STATS:-$root/data/lvis}")
mini=$(realpath -m "${LVIS_MINI:-$root/resources/lvis-mini}")
work=$(realpath -m "${SMOKE_DIR:-$root/results/lvis-smoke/$version}")
cores=${SMOKE_CORES:-2}
configs=("$root/configs/lvis_$version.yaml" "$root/configs/lvis_smoke.yaml" "$work/downloads.yaml")
if [[ ${SMOKE_METHODS:-} != all ]]; then
    configs+=("$root/configs/lvis_smoke_trim.yaml")
fi
if [[ -n ${SMOKE_CONFIG:-} ]]; then
    configs+=("$(realpath "$SMOKE_CONFIG")")
fi
cd "$root"

if [[ ! -f $mini/manifest.json ]]; then
    echo "lvis-smoke: making the mini set in $mini" >&2
    python "$root/scripts/lvis_mini.py" make --stats "$stats" --out "$mini"
fi

mkdir -p "$work"
python -u -m http.server --bind 127.0.0.1 --directory "$mini" 0 >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9]*\) .*/\1/p' "$work/server.log")
    [[ -n $port ]] && break
    sleep 0.1
done
if [[ -z $port ]]; then
    echo "lvis-smoke: the local HTTP server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
echo "lvis-smoke: serving $mini on http://127.0.0.1:$port" >&2

python "$root/scripts/lvis_mini.py" downloads --config "configs/lvis_$version.yaml" --mini "$mini" \
    --base-url "http://127.0.0.1:$port" --out "$work/downloads.yaml"
snakemake --snakefile "$root/Snakefile" --directory "$work" --cores "$cores" \
    --configfile "${configs[@]}"
python "$root/scripts/lvis_mini.py" check --results "$work/results/lvis_$version" --version "$version"
