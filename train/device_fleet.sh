#!/usr/bin/env bash
# Several fine-tuning runs side by side on one lent GPU, each until the same deadline, then
# their weights brought back. An N=64 model keeps an H100/H200 only a few per cent busy
# (one run is bound by kernel launches), so a dozen runs in parallel cost about what one does:
# on an H200, 13 runs at batch 32 made 2,700 crops/s together (210 each; the channel-wise
# model 157), against 690 for one channel-wise run at batch 16.
#
# Prepare here (besides .whl and .data/train, see train/device_run.sh):
#   python -m train.transfer half assets/models/*.safetensors --out .data/init   # about 31 MB
# and move assets/models out of the working tree (.data/init replaces it on the machine).
# Run it there, carrying .whl and .data:
#   bash train/device_fleet.sh [JOBS] [MINUTES]          (JOBS: train/jobs/gpu-finetune.txt)
# with a command limit about 2 minutes above MINUTES (start-up, loading, final checkpoints, packing).
# Back here: cat weights.part-* | tar xz   → fleet/<name>.safetensors, slimmed checkpoints;
#   python -m train.export fleet/<name>.safetensors runs/export-<name>
set -u
JOBS=${1:-train/jobs/gpu-finetune.txt}; MINUTES=${2:-7}
OUT=${OUT:-/tmp/out}; RUNS=${RUNS:-/tmp/runs}; mkdir -p "$OUT" "$RUNS"
if [ -z "${LOCAL:-}" ]; then  # LOCAL=1: a dry run on this machine, whose packages are installed
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"

names=()
while read -r name arch lambdas lr batch init; do
  case "$name" in ''|'#'*) continue ;; esac
  rate="--lmbda=$lambdas"; [[ "$lambdas" == *,* ]] && rate="--lambdas=$lambdas"
  python3 -m train --arch="$arch" --N=64 --M=96 "$rate" --data=.data/train --crop=256 --batch="$batch" \
    --lr="$lr" --lr_final="$(python3 -c "print($lr / 10)")" --warmup=100 --max_minutes="$MINUTES" \
    --lr_by_time=true --amp=none --threads=1 --checkpoint_minutes=2 --log_every=100 \
    --init=".data/init/$init.safetensors" --out_dir="$RUNS/$name" > "$RUNS/$name.log" 2>&1 &
  names+=("$name")
done < "$JOBS"
echo "== ${#names[@]} runs started $(date +%T) for $MINUTES min"
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv | tee -a "$OUT/gpu.txt"
wait
echo "== runs done $(date +%T)"

mkdir -p /tmp/fleet/fleet
for name in "${names[@]}"; do
  printf '%-12s ' "$name"; tr '\r' '\n' < "$RUNS/$name.log" | grep -v '^\s*$' | tail -1
  cp "$RUNS/$name/log.csv" "/tmp/fleet/fleet/$name.csv"
done
python3 -m train.transfer slim "$RUNS"/*/ckpt.safetensors --out /tmp/fleet/fleet > /dev/null  # one process: fast
tar -C /tmp/fleet -cf - fleet | gzip -1 | split -b 15000000 -d - "$OUT/weights.part-"
ls -la "$OUT"; echo "== done $(date +%T)"
