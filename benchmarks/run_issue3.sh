#!/usr/bin/env bash
# Issue 3 benchmark on the SAF data: quality of lora/head/full on every item, then the engine with
# every item's trained LoRA adapter resident, for each backend.
#
# 1. Quality: the research protocol (5 epochs, patience 2, class-weighted CE + L2) per item and
#    kind, JOBS processes side by side over slices of the item bank (a GPU is used when torch
#    sees one: about 1 minute for 30 items x 3 kinds on one H100; on 2 CPU cores, tens of minutes).
# 2. Merge the slices and write the quality report (``--reuse`` reads the trained artifacts).
# 3. Engine: cost, latency, throughput, memory and served QWK (fp32 and int8) with the 30 trained
#    adapters, on this machine's CPU, one process using every core.
#
#   benchmarks/run_issue3.sh                       # all items, full data, seed 13
#   SEED=14 OUT=benchmarks/out/issue3-s14 benchmarks/run_issue3.sh
#   QUALITY_ITEMS=saf-de-1,saf-en-8.1_MM CAP=32 benchmarks/run_issue3.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${SAF_DIR:-../shared/datasets/saf}
OUT=${OUT:-benchmarks/out/issue3}
SEED=${SEED:-13}
CAP=${CAP:-}
JOBS=${JOBS:-$(nproc)}
BACKENDS=${BACKENDS:-torch,onnx,onnx-int8}
COMMON=(--responses "$DATA/responses.csv" --items "$DATA/items.csv" --seed "$SEED")
CAPARG=(); [ -z "$CAP" ] || CAPARG=(--max-train-per-item "$CAP")
ALL_ITEMS=$("$PY" -c "import csv,sys; print(','.join(r['item_id'] for r in csv.DictReader(open(sys.argv[1], encoding='utf-8'))))" "$DATA/items.csv")
ITEMS=${QUALITY_ITEMS:-$ALL_ITEMS}

# one intra-op thread per training process: JOBS processes share the cores
mkdir -p "$OUT"
pids=()
IFS=, read -r -a items <<< "$ITEMS"
for ((part = 0; part < JOBS; part++)); do
  sel=$(printf '%s\n' "${items[@]}" | awk -v p="$part" -v n="$JOBS" 'NR % n == p' | paste -sd,)
  [ -n "$sel" ] || continue
  OMP_NUM_THREADS=1 "$PY" -m ml_core benchmark "${COMMON[@]}" --items-only "$sel" "${CAPARG[@]}" \
    --kinds lora,head,full --eval split --backends none --out "$OUT/parts/$part" > "$OUT.part$part.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for kind in lora head full; do
  mkdir -p "$OUT/artifacts/$kind"
  for folder in "$OUT"/parts/*/artifacts/"$kind"/*; do
    rm -rf "$OUT/artifacts/$kind/$(basename "$folder")"
    mv "$folder" "$OUT/artifacts/$kind/"
  done
done
rm -rf "$OUT/parts"
# both reports read the same trained artifacts
for report in quality engine; do
  mkdir -p "$OUT/$report" && ln -sfn ../artifacts "$OUT/$report/artifacts"
done
"$PY" -m ml_core benchmark "${COMMON[@]}" --items-only "$ITEMS" "${CAPARG[@]}" --kinds lora,head,full \
  --eval split --reuse --backends none --out "$OUT/quality"
# the engine: one process with every core (ml_core.backbone.default_threads(1))
"$PY" -m ml_core benchmark "${COMMON[@]}" --items-only "$ITEMS" "${CAPARG[@]}" \
  --kinds lora --eval split --reuse --backends "$BACKENDS" --repeats 7 --latency-samples 60 \
  --throughput-answers 256 --out "$OUT/engine"
