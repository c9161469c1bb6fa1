#!/usr/bin/env bash
# Every GPU acceptance figure of issue 17 in one short run (about 6-8 minutes on an H100/H200), most important
# first, each step under its own timeout. Usage, from the repo root: bash benchmarks/gpu_quick.sh OUT_DIR
#   train 224 eager: fast_img_per_s, limit_img_per_s, fast_to_limit (target 0.95, >= 4,600 img/s)
#   predict: 5 members + flip TTA over 12,600 eval images at 224, cold (target <= 10 s), decode vs model seconds
#   cache build of the 18,900 training images at 224: nvJPEG vs Pillow workers, and how far their pixels differ
#   train 512x384 (target 0.92), train 224 compiled (target 0.95), then the photo-like ratio and bench infer
set -u
OUT=${1:?out dir}
export PYTHONPATH=. HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
D=/tmp/maskcls-quick; P=/tmp/maskcls-photo; R=/tmp/maskcls-runs
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import os, torch, torchvision, timm; print('torch', torch.__version__, 'tv', torchvision.__version__, 'timm', timm.__version__, 'cpus', os.cpu_count())" | tee -a "$OUT/gpu.txt"
step() { echo "== $1 $(date +%T)"; }
step "demo data: 2,700 people (18,900 training images, the real count) + the full eval set (12,600)"
timeout 90 python3 -m maskcls demo-data "$D" --people 2700 --eval-people 1800 --workers 16 --quiet 2>&1 | tail -3
step "train 224 eager (limit in the same run)"
timeout 100 python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 224,224 --batch 256 --workers 8 \
  --steps 40 --warmup 8 --json 2>&1 | tee "$OUT/train224.json"
step "predict: 5 members, flip TTA, 12,600 eval images at 224 (cold = decode cache empty; Pillow workers, then nvJPEG)"
python3 benchmarks/make_members.py "$R" 5 efficientnet_b0 224 > /dev/null
TIMEFORMAT="process wall %R s"
for pass in cold warm nvjpeg-cold; do
  [ "$pass" = nvjpeg-cold ] && export MASKCLS_NVJPEG=1 && rm -rf /tmp/maskcls-evalcache
  { time timeout 90 python3 -m maskcls predict --data "$D" --runs-root "$R" --members m0 m1 m2 m3 m4 --method soft \
    --tta flip --out "/tmp/sub-$pass.csv" --cache-dir /tmp/maskcls-evalcache --quiet 2>&1 | grep -v -i warn ; } 2>&1 \
    | sed "s/^/$pass: /" | tee -a "$OUT/predict.txt"
done
unset MASKCLS_NVJPEG
step "cache build of 18,900 images at 224: nvJPEG vs Pillow workers"
timeout 90 python3 -m maskcls bench cache --data "$D" --size 224,224 --json 2>&1 | tee "$OUT/cache224.json"
step "train 512x384"
timeout 90 python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 512,384 --batch 64 --workers 8 \
  --steps 30 --warmup 8 --json 2>&1 | tee "$OUT/train512.json"
step "train 224 with torch.compile (limit compiled too)"
timeout 170 python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 224,224 --batch 256 --workers 8 \
  --steps 40 --warmup 8 --compile --json 2>&1 | tee "$OUT/train224-compile.json"
step "baseline ratio on photo-like images"
timeout 60 python3 -m maskcls demo-data "$P" --people 700 --eval-people 0 --workers 16 --photo --quiet > /dev/null 2>&1
timeout 60 python3 -m maskcls bench train --data "$P" --model efficientnet_b0 --size 224,224 --batch 256 --workers 8 \
  --steps 40 --warmup 8 --json 2>&1 | tee "$OUT/train224-photo.json"
step "bench infer (model time and limit, cache warm)"
timeout 60 python3 -m maskcls bench infer --data "$D" --model efficientnet_b0 --size 224,224 --batch 128 --workers 8 \
  --members 5 --tta flip --cache-dir /tmp/maskcls-evalcache --json 2>&1 | tee "$OUT/infer224.json"
step done
