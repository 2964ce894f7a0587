#!/usr/bin/env bash
# Train on synthetic, test on real at GPU scale, within a fixed time (docs/evaluation.md, "GPU scale").
#
# Four lanes of `bvdm evaluate` share one GPU. Each lane runs one seed at a time into its own folder, so a
# run stopped by the time limit keeps every seed that finished (combine them with
# `python benchmarks/combine_runs.py OUT`).
#   lanes a, b: real, real+synthetic, synthetic  with the given synthetic set (SYNTHETIC)
#   lane c:     paints a new set of $VIDEOS videos on the GPU first (`--generate` with the given texture and
#               flow weights), then real+synthetic, synthetic with it
#   lane d:     waits for lane c's set, then the same on the other seeds
# With TEXTURE "none" nothing is painted: lanes c and d run the given set on SEEDS_C and SEEDS_D. With TEXTURE
# "train" lane c trains a texture model on the GPU first (on the training part, as `--generate` does without
# --texture-model; its settings come from GEN_JSON's "generate" section, e.g. texture_training's width, steps,
# max_minutes, crop_size); FLOW "train" trains the flow model there too (flow_training's steps).
#
# Usage: bash benchmarks/gpu_evaluate.sh OUT REAL SYNTHETIC TEXTURE FLOW [LIMIT_S]
# Settings (environment, defaults for an H100): STEPS=3000 BATCH=8 PATCH=192 BASE=16 DS=2 GEN_DS=2 VIDEOS=4
# DEVICE=cuda THREADS=3 SEEDS_A="0 2 4 6 8 10" SEEDS_B="1 3 5 7 9 11" PYTHON=python3; EXTRA: more evaluate
# options for every lane (e.g. "--seeds 0" for a quick check on the CPU); GIVEN_SETS: the sets of lanes
# a and b (default "real real+synthetic synthetic"); PAINTED_SETS: those of lanes c and d (default
# "real+synthetic synthetic"); GEN_JSON: more `--config` settings of the painting lane (default
# '{"generate": {"texture_training": {"precision": "bf16"}}}').
set -uo pipefail
OUT=$1 REAL=$2 SYN=$3 TEX=$4 FLOW=$5 LIMIT=${6:-420}
PY=${PYTHON:-python3}
STEPS=${STEPS:-3000} BATCH=${BATCH:-8} PATCH=${PATCH:-192} BASE=${BASE:-16} DS=${DS:-2} GEN_DS=${GEN_DS:-2}
VIDEOS=${VIDEOS:-4} DEVICE=${DEVICE:-cuda} THREADS=${THREADS:-3}
SEEDS_A=${SEEDS_A:-"0 2 4 6 8 10"} SEEDS_B=${SEEDS_B:-"1 3 5 7 9 11"}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LANE_CFG="$OUT/evaluate_config.json"
GEN_SETTINGS="$OUT/generate_config.json"
DEFAULT_GEN='{"generate": {"texture_training": {"precision": "bf16"}}}'
"$PY" - "$LANE_CFG" "$GEN_SETTINGS" "$BATCH" "$PATCH" "$BASE" "$GEN_DS" "$VIDEOS" "${GEN_JSON:-$DEFAULT_GEN}" <<'PY'
import json, sys
lane, gen, batch, patch, base, gen_ds, videos, extra = sys.argv[1:]
cfg = {"train": {"batch_size": int(batch), "patch_size": int(patch)}, "net": {"base_channels": int(base)}}
json.dump(cfg, open(lane, "w"))
painted = {**cfg, "generate": {"downsample": int(gen_ds), "synthesis": {"output": {"videos": int(videos)}}}}
for key, value in json.loads(extra).get("generate", {}).items():
    painted["generate"][key] = {**painted["generate"].get(key, {}), **value} if isinstance(value, dict) else value
json.dump(painted, open(gen, "w"))
PY
EVAL=("$PY" -m napari_bvdm.cli evaluate --real "$REAL" --downsample "$DS" --steps "$STEPS" --device "$DEVICE"
      --threads "$THREADS" --quiet ${EXTRA:-})
SYN_DS=$((DS / GEN_DS))
GIVEN_SETS=${GIVEN_SETS:-"real real+synthetic synthetic"}
PAINTED_SETS=${PAINTED_SETS:-"real+synthetic synthetic"}

given_set() {  # lane name, seeds
  for s in $2; do
    "${EVAL[@]}" --config "$LANE_CFG" --synthetic "$SYN" --synthetic-downsample "$SYN_DS" --sets $GIVEN_SETS \
      --seeds "$s" -o "$OUT/given-seed$s" > "$OUT/lane-$1-seed$s.log" 2>&1
  done
}

painted_set() {  # lane name, seeds; the first seed of lane c paints the set
  local first=1 s
  for s in $2; do
    if [ "$1" = c ] && [ $first = 1 ]; then
      local given=()
      [ "$TEX" = train ] || given+=(--texture-model "$TEX")
      [ "$FLOW" = train ] || given+=(--flow-model "$FLOW")
      "${EVAL[@]}" --generate "${given[@]}" --config "$GEN_SETTINGS" --sets $PAINTED_SETS \
        --seeds "$s" -o "$OUT/painted-seed$s" > "$OUT/lane-c-seed$s.log" 2>&1
      first=0
      continue
    fi
    local data
    data=$(ls -d "$OUT"/painted-seed*/data/synthetic 2>/dev/null | head -1)
    "${EVAL[@]}" --config "$LANE_CFG" --synthetic "$data" --synthetic-downsample "$SYN_DS" --sets $PAINTED_SETS \
      --seeds "$s" -o "$OUT/painted-seed$s" > "$OUT/lane-$1-seed$s.log" 2>&1
  done
}

wait_for_painted() {  # the set is complete once lane c's evaluation has written info.json
  while [ -z "$(ls "$OUT"/painted-seed*/info.json 2>/dev/null)" ]; do sleep 5; done
}

t0=$(date +%s)
given_set a "$SEEDS_A" &
given_set b "$SEEDS_B" &
if [ "$TEX" = none ]; then  # no painting: lanes c and d run the given set on seeds of their own
  given_set c "${SEEDS_C:?SEEDS_C is needed when TEXTURE is none}" &
  given_set d "${SEEDS_D:?SEEDS_D is needed when TEXTURE is none}" &
else
  painted_set c "$SEEDS_A" &
  (wait_for_painted; painted_set d "$SEEDS_B") &
fi
LANES=$(jobs -p)
stop_at_limit() {
  sleep "$LIMIT" &
  local timer=$!
  trap 'kill $timer 2>/dev/null; exit 0' TERM
  wait $timer
  trap '' TERM
  echo "[gpu_evaluate] time limit ${LIMIT} s: stopping the lanes"
  kill $LANES 2>/dev/null
  sleep 1
  pkill -TERM -f "napari_bvdm.cli evaluate"
}
stop_at_limit &
WATCH=$!
wait $LANES 2>/dev/null
kill $WATCH 2>/dev/null
pkill -TERM -f "napari_bvdm.cli evaluate"  # what a stopped lane left running
echo "[gpu_evaluate] lanes ended after $(( $(date +%s) - t0 )) s"
