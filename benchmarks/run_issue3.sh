#!/usr/bin/env bash
# Issue 3 benchmark on the SAF data, sized for a shared 2-core CPU machine.
#
# 1. Quality: lora, head and full trained with the research protocol (5 epochs, patience 2) on
#    QUALITY_ITEMS (default: 8 items, 3 German + 5 English, with and without given splits),
#    training answers capped at CAP. lora+head and full train in two processes side by side.
# 2. Engine: a lora adapter for every one of the 30 items (ENGINE_EPOCHS epochs on ENGINE_CAP
#    answers: the engine's cost, memory and latency do not depend on the adapter values), then
#    the engine is measured with all 30 items resident (mixed batch of 32 over 30 items).
# 3. The quality run's engine part measures QWK through the served path (torch, onnx, onnx-int8).
# Set QUALITY_ITEMS=all, CAP= and ENGINE_EPOCHS=5 on a machine with time to spare.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${SAF_DIR:-../shared/datasets/saf}
OUT=${OUT:-benchmarks/out/issue3}
CAP=${CAP:-48}
ENGINE_CAP=${ENGINE_CAP:-16}
ENGINE_EPOCHS=${ENGINE_EPOCHS:-1}
QUALITY_ITEMS=${QUALITY_ITEMS:-saf-de-1,saf-de-3,saf-de-5,saf-en-10.1_TC,saf-en-11.4_SDN,saf-en-12.3_PE,saf-en-6.3_IPP,saf-en-8.1_MM}
SEL=(); [ "$QUALITY_ITEMS" = all ] || SEL=(--items-only "$QUALITY_ITEMS")
CAPARG=(); [ -z "$CAP" ] || CAPARG=(--max-train-per-item "$CAP")
COMMON=(--responses "$DATA/responses.csv" --items "$DATA/items.csv")

python -m ml_core benchmark "${COMMON[@]}" "${SEL[@]}" "${CAPARG[@]}" --kinds lora,head --backends none --out "$OUT/quality" &
python -m ml_core benchmark "${COMMON[@]}" "${SEL[@]}" "${CAPARG[@]}" --kinds full --backends none --out "$OUT/quality-full" &
python -m ml_core benchmark "${COMMON[@]}" --max-train-per-item "$ENGINE_CAP" --epochs "$ENGINE_EPOCHS" --kinds lora --backends none --out "$OUT/engine"
# engine cost with all 30 items resident (quality columns of this run are not meaningful)
python -m ml_core benchmark "${COMMON[@]}" --max-train-per-item "$ENGINE_CAP" --epochs "$ENGINE_EPOCHS" --kinds lora --reuse --out "$OUT/engine"
wait
rm -rf "$OUT/quality/artifacts/full" && mv "$OUT/quality-full/artifacts/full" "$OUT/quality/artifacts/full"
python -m ml_core benchmark "${COMMON[@]}" "${SEL[@]}" "${CAPARG[@]}" --kinds lora,head,full --reuse --repeats 5 --out "$OUT/quality"
