#!/usr/bin/env bash
# Issue 3 benchmark on the SAF data: quality of lora/head/full per item and multi-item engine cost.
# Training is split over two processes (lora+head, full) so that it finishes on a shared 2-core
# machine; the last step reuses every artifact, measures the engine and writes the reports.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${SAF_DIR:-../shared/datasets/saf}
OUT=${OUT:-benchmarks/out/issue3}
CAP=${CAP:-120}
COMMON=(--responses "$DATA/responses.csv" --items "$DATA/items.csv" --max-train-per-item "$CAP")
python -m ml_core benchmark "${COMMON[@]}" --kinds lora,head --backends none --out "$OUT" &
python -m ml_core benchmark "${COMMON[@]}" --kinds full --backends none --out "$OUT-full" &
wait
mkdir -p "$OUT/artifacts"
rm -rf "$OUT/artifacts/full" && mv "$OUT-full/artifacts/full" "$OUT/artifacts/full"
python -m ml_core benchmark "${COMMON[@]}" --kinds lora,head,full --reuse --out "$OUT"
