#!/usr/bin/env bash
# Second, short GPU call of issue 17 (about 3.5 minutes): the eval set alone, the in-process profile
# (benchmarks/gpu_profile.py), then `maskcls predict` cold end to end. Usage: bash benchmarks/gpu_round2.sh OUT_DIR
set -u
OUT=${1:?out dir}
export PYTHONPATH=. HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
D=/tmp/maskcls-eval; R=/tmp/maskcls-runs
mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/gpu.txt"
echo "== demo eval set $(date +%T)"
timeout 60 python3 -m maskcls demo-data "$D" --people 40 --eval-people 1800 --workers 16 --quiet 2>&1 | tail -1
python3 benchmarks/make_members.py "$R" 5 efficientnet_b0 224 > /dev/null
TIMEFORMAT="process wall %R s"
echo "== predict cold, defaults $(date +%T)"
{ time timeout 60 python3 -m maskcls predict --data "$D" --runs-root "$R" --members m0 m1 m2 m3 m4 --method soft \
  --tta flip --out /tmp/sub.csv --cache-dir /tmp/cache-a --quiet 2>&1 | grep -v -i warn ; } 2>&1 | tee -a "$OUT/predict.txt"
echo "== profile $(date +%T)"
timeout 150 python3 benchmarks/gpu_profile.py "$D" "$OUT/profile.json" 2>&1 | grep -v -i warn
echo "== predict cold, Pillow workers, no autotune $(date +%T)"
{ time MASKCLS_CUDNN_BENCHMARK=0 timeout 60 python3 -m maskcls predict --data "$D" --runs-root "$R" \
  --members m0 m1 m2 m3 m4 --method soft --tta flip --out /tmp/sub.csv --cache-dir /tmp/cache-b --quiet 2>&1 \
  | grep -v -i warn ; } 2>&1 | sed 's/^/pillow-noautotune: /' | tee -a "$OUT/predict.txt"
echo "== done $(date +%T)"
