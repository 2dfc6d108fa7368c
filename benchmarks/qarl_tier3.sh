#!/usr/bin/env bash
# QARL tier 3 (docs/benchmarks.md): on each task, measure SAC first (sac-adv0/<task>, seeds 0-9, one run at a
# time, one torch thread), and only where it qualifies (qarl_robustness.py qualify: 90 % of the best return
# in 9 of 10 seeds within the budget) run the SAC / RARL / QARL plan, which reuses the measured SAC runs
# (a finished run resumes as done). Everything resumes: rerun this script. PYTHON picks the interpreter.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

for task in inverted-pendulum inverted-double-pendulum; do
  case $task in
    inverted-pendulum) sweep=sweeps/tier3-sac-ip tag=tier3 ;;
    *) sweep=sweeps/tier3-sac-idp tag=tier3-idp ;;
  esac
  while alive "$sweep.pid"; do sleep 60; done  # a sweep started by hand on this folder: let it finish
  if [ -f "$sweep/manifest.json" ]; then
    nice -n 5 "$PY" train.py --sweep-dir "$sweep" --parallel 1 --threads 1 >> "$sweep.log" 2>&1
  else
    nice -n 5 "$PY" train.py "sac-adv0/$task" train.threads=1 train.progress=false --seeds 0-9 \
      --sweep-dir "$sweep" --parallel 1 --threads 1 >> "$sweep.log" 2>&1
  fi
  if ! "$PY" benchmarks/qarl_robustness.py qualify "$sweep"/trials/seed* > "$sweep.qualify.txt"; then
    echo "$(date -u +%H:%M) $task: SAC does not qualify (see $sweep.qualify.txt)"
    continue
  fi
  root=benchmarks/runs/qarl/$tag
  mkdir -p "$root"
  for seed in 0 1 2 3 4 5 6 7 8 9; do  # the plan's SAC runs are the measured ones
    [ -e "$root/sac_s$seed" ] || cp -r "$sweep/trials/seed$seed" "$root/sac_s$seed"
  done
  echo "$(date -u +%H:%M) $task: SAC qualifies; the plan starts"
  nice -n 5 "$PY" benchmarks/qarl_robustness.py run --task "tier3-$task" --seeds 0 1 2 3 4 5 6 7 8 9 \
    --workers 1 --calibration-steps 40000 >> "$root.log" 2>&1
done
