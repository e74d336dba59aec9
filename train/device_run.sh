#!/usr/bin/env bash
# One command on a lent GPU machine: the cross-device checks (benchmarks/cross_device.py),
# then fine-tuning a variable-rate model on the GPU until a deadline, then the checkpoint
# split into parts small enough to come back from $OUT (at most 16 MB a file).
#
# Prepare here (the machine receives only the checkout, 64 MiB in all with carried folders):
#   echo /.whl/ >> .git/info/exclude; echo /.data/ >> .git/info/exclude
#   mkdir -p .whl && cp ../shared/gpu/wheels/*.whl .whl/
#   python -m train.pack --out .data/train              # 543 photos, about 24 MB
#   mkdir -p .data/kodak && cp $(ls ../shared/datasets/kodak/*.png | head -8) .data/kodak/
# and move weights the run does not need out of assets/models (it holds about 133 MB).
# Run it there, carrying .whl and .data:
#   bash train/device_run.sh [DEVICES] [KODAK_IMAGES] [MAX_MINUTES] [STEPS] [BATCH] [INIT] [ARCH]
# (KODAK_IMAGES 0 skips the cross-device checks; an empty INIT trains from scratch.)
# Back here, join the parts (cat ckpt.part-* > ckpt.safetensors); training resumes from it.
# The learning rate decays over the time this command has (--lr_by_time), so STEPS is only a cap.
# A second command on the still-warm machine continues /tmp/run (its checkpoint takes precedence
# over INIT) with a fresh decay over its own minutes: a warm restart.
set -u
DEVICES=${1:-cuda,cpu}; KODAK_IMAGES=${2:-4}; MAX_MINUTES=${3:-7}; STEPS=${4:-1000000}; BATCH=${5:-16}
INIT=${6-assets/models/minnen2020-channelwise-variable-rate.safetensors}; ARCH=${7:-minnen2020-channelwise}
LAMBDAS=0.0018,0.0035,0.0067,0.013,0.025,0.0483,0.0932,0.18
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; START=$(date +%s); DEADLINE_S=${DEADLINE_S:-480}
if [ -z "${LOCAL:-}" ]; then  # LOCAL=1: a dry run on this machine, whose packages are installed
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, compressai; print(torch.__version__, compressai.__version__, torch.cuda.is_available())" \
  2>&1 | tee -a "$OUT/gpu.txt"

if [ "$KODAK_IMAGES" -gt 0 ]; then
  echo "== cross_device $(date +%T)"
  timeout 150 python3 -m benchmarks.cross_device --data .data/kodak --limit "$KODAK_IMAGES" --devices "$DEVICES" \
    --out "$OUT" 2>&1 | tee "$OUT/cross-device.log"
  echo "cross_device rc=${PIPESTATUS[0]} (1: a file failed to decode somewhere; 124: timed out, no JSON)"
fi

MINUTES=$(python3 -c "print(round(min($MAX_MINUTES, ($START + $DEADLINE_S - $(date +%s) - 40) / 60), 2))")
if python3 -c "import sys; sys.exit($MINUTES >= 0.5)"; then echo "== no time left to train"; exit 0; fi
echo "== train $(date +%T) for $MINUTES min"
timeout "$(python3 -c "print(int(60 * $MINUTES + 90))")" python3 -m train --arch="$ARCH" --N=64 --M=96 \
  --lambdas=$LAMBDAS --data=.data/train --crop=256 --batch="$BATCH" --steps="$STEPS" --lr=5e-5 --lr_final=5e-6 \
  --warmup=100 --max_minutes="$MINUTES" --lr_by_time=true --amp=none --checkpoint_minutes=1.5 --log_every=100 \
  ${INIT:+"--init=$INIT"} --out_dir=/tmp/run > /tmp/train.log 2>&1
echo "train rc=$?"
tr '\r' '\n' < /tmp/train.log | grep -v '^\s*$' | tail -3
[ -f /tmp/run/ckpt.safetensors ] || { echo "no checkpoint was written"; exit 1; }
cp /tmp/run/log.csv "$OUT/train-log.csv"
split -b 15000000 -d /tmp/run/ckpt.safetensors "$OUT/ckpt.part-"
ls -la "$OUT"; echo "== done $(date +%T)"
