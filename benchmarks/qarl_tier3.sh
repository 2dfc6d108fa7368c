#!/usr/bin/env bash
# QARL tier 3 (docs/benchmarks.md): per stage, measure SAC first (sac-adv0/<task>, seeds 0-9, one run at a
# time, one torch thread), and only where it qualifies (qarl_robustness.py qualify: 90 % of the best return
# in 9 of 10 seeds within the budget) run the SAC / RARL / QARL plan, which reuses the measured SAC runs
# (a finished run resumes as done). Stages: InvertedPendulum at 20k SAC steps; if that does not qualify,
# InvertedPendulum at 50k; then InvertedDoublePendulum at 50k. Everything resumes: rerun this script.
# PYTHON picks the interpreter.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stage: task, sweep folder, SAC env steps (QARL / RARL get twice), plan tag
stage() {
  local task=$1 sweep=$2 steps=$3 tag=$4
  while alive "$sweep.pid"; do sleep 60; done  # a sweep started by hand on this folder: let it finish
  if [ -d "$sweep/trials" ] && "$PY" benchmarks/qarl_robustness.py qualify "$sweep"/trials/seed* |
    tail -1 | grep -q '"verdict": "fails"'; then  # decided already: more seeds cannot make it qualify
    echo "$(date -u +%H:%M) $task at $steps: SAC already fails the criterion; its remaining seeds are skipped"
    return 1
  fi
  if [ -f "$sweep/manifest.json" ]; then
    nice -n 5 "$PY" train.py --sweep-dir "$sweep" --parallel 1 --threads 1 >> "$sweep.log" 2>&1
  else
    nice -n 5 "$PY" train.py "sac-adv0/$task" train.threads=1 train.progress=false "train.total_steps=$steps" \
      --seeds 0-9 --sweep-dir "$sweep" --parallel 1 --threads 1 >> "$sweep.log" 2>&1
  fi
  if ! "$PY" benchmarks/qarl_robustness.py qualify "$sweep"/trials/seed* > "$sweep.qualify.txt"; then
    echo "$(date -u +%H:%M) $task at $steps: SAC does not qualify (see $sweep.qualify.txt)"
    return 1
  fi
  local root=benchmarks/runs/qarl/$tag
  mkdir -p "$root"
  for seed in 0 1 2 3 4 5 6 7 8 9; do  # the plan's SAC runs are the measured ones
    [ -e "$root/sac_s$seed" ] || cp -r "$sweep/trials/seed$seed" "$root/sac_s$seed"
  done
  # the force is calibrated against the plan's first seed: the lowest seed whose SAC reached the criterion
  local first seeds
  first=$(grep -m1 'reached True' "$sweep.qualify.txt" | sed 's/^seed\([0-9]*\):.*/\1/')
  seeds="$first $(seq 0 9 | grep -vx "$first" | tr '\n' ' ')"
  echo "$(date -u +%H:%M) $task at $steps: SAC qualifies; the plan $tag starts (seeds $seeds)"
  nice -n 5 "$PY" benchmarks/qarl_robustness.py run --task "tier3-$task" --tag "$tag" --steps $((2 * steps)) \
    --seeds $seeds --workers 1 --calibration-steps 40000 >> "$root.log" 2>&1
}

stage inverted-pendulum sweeps/tier3-sac-ip 20000 tier3 ||
  stage inverted-pendulum sweeps/tier3-sac-ip-50k 50000 tier3-50k
stage inverted-double-pendulum sweeps/tier3-sac-idp 50000 tier3-idp
