#!/usr/bin/env bash
# Several fine-tuning runs side by side on one lent GPU, each until the same deadline, then
# their weights brought back. An N=64 model keeps an H100/H200 only a few per cent busy
# (one run is bound by kernel launches), so a dozen runs in parallel cost little more than one:
# on an H200, 13 runs at batch 32 made 2,700 crops/s together (210 each; the channel-wise
# model 157), where one channel-wise run alone at batch 16 made about 640.
#
# Prepare here (besides .whl and .data/train, see train/device_run.sh):
#   python -m train.transfer half assets/models/*.safetensors --out .data/init   # 41 MB for all 13
# and move assets/models out of the working tree: the checkout and carried folders must stay
# under 64 MiB. (.data/init holds only training starting points, not weights the codec can use.)
# Run it there, carrying .whl and .data:
#   bash train/device_fleet.sh [JOBS] [MINUTES]          (JOBS: train/jobs/gpu-finetune.txt)
# with a command limit about 2 minutes above MINUTES (start-up, loading, final checkpoints, packing).
# A job line is: name arch λ (one: fixed rate; several, comma-separated: variable rate) lr batch init.
# Every run: N and M of its starting point's card (.data/init/<init>.json; an init may name a
# subfolder, e.g. wide/<stem> for weights grown by train.widen), 256-px crops, warm-up 100 steps, then the learning rate decays to lr/10
# over the minutes (--lr_by_time); float32 with TF32 (no bf16: these models are launch-bound).
# For more minutes than one command may run (10), start it detached and collect it in a second
# command issued at once (the machine stays warm for 30 s between commands):
#   OUT=/tmp/fleetout setsid nohup bash train/device_fleet.sh JOBS 10 > /tmp/fleet.log 2>&1 < /dev/null & sleep 545
#   then: until grep -q '== done' /tmp/fleet.log; do sleep 3; done; cp /tmp/fleetout/weights.part-* $OUT/
# Every command carries .whl and .data. A second command on the still-warm machine resumes
# each $RUNS/<name> checkpoint (its init weights are then ignored, but their card still gives
# N and M) with a fresh decay from its lr column: a warm restart.
# Back here: cat weights.part-* | tar xz   → fleet/<name>.safetensors (checkpoints without
# optimizer state); python -m train.export fleet/<name>.safetensors runs/export-<name>.
# The way back holds at most 64 MB: 13 N=64 runs come to about 53 MB.
set -u
JOBS=${1:-train/jobs/gpu-finetune.txt}; MINUTES=${2:-7}
OUT=${OUT:-/tmp/out}; RUNS=${RUNS:-/tmp/runs}; PACK=/tmp/fleet
[ -f "$JOBS" ] || { echo "no job file $JOBS"; exit 2; }
mkdir -p "$OUT" "$RUNS"; rm -rf "$PACK"; mkdir -p "$PACK/fleet"
# LOCAL=1: a dry run on this machine, whose packages are installed; a warm machine keeps /tmp/site
# (reinstalled when a package that training imports is missing there, e.g. after a start without every wheel)
if [ -z "${LOCAL:-}" ] && ! PYTHONPATH=/tmp/site python3 -c "import compressai, pytorch_msssim" 2> /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"

names=(); pids=(); failed=0
while read -r name arch lambdas lr batch init _; do
  case "$name" in ''|'#'*) continue ;; esac
  rate="--lmbda=$lambdas"; [[ "$lambdas" == *,* ]] && rate="--lambdas=$lambdas"
  [ -f "$RUNS/$name/ckpt.safetensors" ] || [ -f ".data/init/$init.safetensors" ] \
    || { echo "$name: no .data/init/$init.safetensors, skipped"; failed=$((failed + 1)); continue; }
  widths=$(python3 -c "import json; c = json.load(open('.data/init/$init.json')); print(f'--N={c[\"N\"]} --M={c[\"M\"]}')" 2> /dev/null) \
    || { echo "$name: no card .data/init/$init.json, skipped"; failed=$((failed + 1)); continue; }
  # shellcheck disable=SC2086  # $widths is two options
  timeout "$(python3 -c "print(int(60 * $MINUTES + 120))")" python3 -m train --arch="$arch" $widths \
    "$rate" --data=.data/train --crop=256 --batch="$batch" --lr="$lr" --lr_final="$(python3 -c "print($lr / 10)")" \
    --warmup=100 --max_minutes="$MINUTES" --lr_by_time=true --amp=none --threads=1 --checkpoint_minutes=2 \
    --log_every=100 --init=".data/init/$init.safetensors" --out_dir="$RUNS/$name" \
    < /dev/null > "$RUNS/$name.log" 2>&1 &
  names+=("$name"); pids+=($!)
done < "$JOBS"
[ ${#names[@]} -gt 0 ] || { echo "no job to run in $JOBS"; exit 2; }
echo "== ${#names[@]} runs started $(date +%T) for $MINUTES min"
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv | tee -a "$OUT/gpu.txt"

back=()
for i in "${!names[@]}"; do
  name=${names[$i]}; wait "${pids[$i]}"; rc=$?
  printf '%-12s rc=%s ' "$name" "$rc"; tr '\r' '\n' < "$RUNS/$name.log" | grep -v '^\s*$' | tail -1
  if [ "$rc" -ne 0 ] || [ ! -f "$RUNS/$name/ckpt.safetensors" ]; then failed=$((failed + 1)); continue; fi
  back+=("$RUNS/$name/ckpt.safetensors"); cp "$RUNS/$name/log.csv" "$PACK/fleet/$name.csv"
done
echo "== runs done $(date +%T)"
[ ${#back[@]} -gt 0 ] || { echo "no run finished"; exit 1; }
python3 -m train.transfer slim "${back[@]}" --out "$PACK/fleet" > /dev/null || exit 1  # one process: fast
tar -C "$PACK" -cf - fleet | gzip -1 > "$PACK/weights.tar.gz"
size=$(stat -c %s "$PACK/weights.tar.gz")
[ "$size" -le 62000000 ] || { echo "weights.tar.gz is $size bytes: too much to come back"; exit 1; }
split -b 15000000 -d "$PACK/weights.tar.gz" "$OUT/weights.part-"
ls -la "$OUT"; echo "== done $(date +%T), runs failed or skipped: $failed"
exit $((failed > 0))
