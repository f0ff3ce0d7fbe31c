#!/usr/bin/env bash
# Issue 3 benchmark on the SAF data, sized for a shared, heavily loaded 2-core CPU machine.
#
# 1. Quality: lora, head and full trained with the research protocol (5 epochs, patience 2,
#    class-weighted CE + L2) on QUALITY_ITEMS, training answers capped at CAP; one process per
#    item so the items train side by side.
# 2. Engine: a lora adapter for every one of the 30 items (ENGINE_EPOCHS epochs on ENGINE_CAP
#    answers; the engine's cost, memory and latency do not depend on the adapter values), then the
#    engine is measured with all 30 items resident (mixed batch of 32 answers over 30 items).
# 3. The quality report also scores each quality item's test split through the served engine
#    (torch, onnx fp32, onnx int8) for the int8-vs-fp32 QWK shift.
# On a machine with time to spare: QUALITY_ITEMS=<all 30 ids> CAP= ENGINE_EPOCHS=5 ENGINE_CAP=.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${SAF_DIR:-../shared/datasets/saf}
OUT=${OUT:-benchmarks/out/issue3}
CAP=${CAP:-32}
ENGINE_CAP=${ENGINE_CAP:-16}
ENGINE_EPOCHS=${ENGINE_EPOCHS:-1}
QUALITY_ITEMS=${QUALITY_ITEMS:-saf-de-1,saf-de-5,saf-en-11.4_SDN,saf-en-12.3_PE}
REPEATS=${REPEATS:-5}
# one intra-op thread per process: on an oversubscribed machine two spinning OpenMP threads per
# process wait on each other; the engine's own default is cores / SCORING_WORKER_PROCESSES
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} SCORING_WORKER_PROCESSES=${SCORING_WORKER_PROCESSES:-2}
COMMON=(--responses "$DATA/responses.csv" --items "$DATA/items.csv")
CAPARG=(); [ -z "$CAP" ] || CAPARG=(--max-train-per-item "$CAP")
ENGARG=(--epochs "$ENGINE_EPOCHS"); [ -z "$ENGINE_CAP" ] || ENGARG+=(--max-train-per-item "$ENGINE_CAP")
ALL_ITEMS=$(python -c "import csv,sys; print(','.join(r['item_id'] for r in csv.DictReader(open(sys.argv[1], encoding='utf-8'))))" "$DATA/items.csv")

pids=()
for item in ${QUALITY_ITEMS//,/ }; do
  python -m ml_core benchmark "${COMMON[@]}" --items-only "$item" "${CAPARG[@]}" --kinds lora,head,full --backends none --out "$OUT/quality-parts/$item" &
  pids+=($!)
done
# engine adapters: three processes over thirds of the item bank
IFS=, read -r -a items <<< "$ALL_ITEMS"
for part in 0 1 2; do
  sel=$(printf '%s\n' "${items[@]}" | awk -v p=$part 'NR % 3 == p' | paste -sd,)
  python -m ml_core benchmark "${COMMON[@]}" --items-only "$sel" "${ENGARG[@]}" --kinds lora --backends none --reuse --out "$OUT/engine" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

for item in ${QUALITY_ITEMS//,/ }; do
  for kind in lora head full; do
    mkdir -p "$OUT/quality/artifacts/$kind"
    rm -rf "$OUT/quality/artifacts/$kind/$item"
    mv "$OUT/quality-parts/$item/artifacts/$kind/$item" "$OUT/quality/artifacts/$kind/$item"
  done
done
python -m ml_core benchmark "${COMMON[@]}" "${ENGARG[@]}" --kinds lora --reuse --repeats "$REPEATS" --latency-samples 40 --throughput-answers 128 --out "$OUT/engine" &
python -m ml_core benchmark "${COMMON[@]}" --items-only "$QUALITY_ITEMS" "${CAPARG[@]}" --kinds lora,head,full --reuse --repeats 3 --latency-samples 10 --throughput-answers 32 --out "$OUT/quality" &
wait
cp "$OUT/quality/report.md" benchmarks/issue3-quality-report.md
cp "$OUT/quality/report.json" benchmarks/issue3-quality-report.json
cp "$OUT/engine/report.md" benchmarks/issue3-engine-report.md
cp "$OUT/engine/report.json" benchmarks/issue3-engine-report.json
