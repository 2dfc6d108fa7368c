"""Short fixed-seed runs give the same learners as before the runner was unified (see pinned_runs.py).

The hashes were recorded on main at 1b39e19, before the one-runner refactor, on the 2-core CPU VM
(torch 2.13.0, one thread). A change to what a run computes (the order of updates, a seed, a
component's state) changes a hash; so does a different torch build, in which case regenerate them
with ``python tests/pinned_runs.py`` on the old commit and the new one and compare.

The last bits of float results depend on the CPU the kernels run on (MKL and torch choose code
paths by CPU; forcing MKL's reproducible mode, MKL_CBWR, changes these hashes too): on the VM of
2026-12-06 (an AMD EPYC with AVX512-VP2INTERSECT, host kernel fc-v1300) every pinned run gave another
hash than on the first VM, on code that gave the recorded ones there (1ef855e, whose CI passed), and
the same hashes on that code and on the code after it. So each preset has one hash per machine it was
recorded on, and a run must give one of them: a change to what a run computes changes the hash on
every machine (two 64-bit prefixes of SHA-256 colliding by chance is out of the question). On a third
kind of machine regenerate them as above, on a commit known to compute the recorded runs.

One hash was re-recorded since, for a change of float summation order only: PIN's v1_mc update now
reads the taken tokens' Q-values alone instead of a ``[B, T, V]`` tensor (the same loss); after the
pinned run its parameters and Adam moments differ from the old code's by at most 1.9e-7 relative
(1.4e-9 absolute), measured against f8a7517.
"""

import json

import pytest
import torch
from pinned_runs import PINNED, run_hash

# preset -> its hash on each machine it was recorded on: (the first VM, the VM of 2026-12-06)
RECORDED = {
    "sac": ("e89e689c20cd591b", "ebed07f1177a0cc4"),
    "dqn/cartpole": ("7272004753c5ca40", "5b61b650cad15be5"),
    "erc-dqn/cartpole": ("3ad52600ffbab1c7", "f65d4548c3163343"),
    "qmix/climbing": ("4d1c702ab7999930", "1dad9c38316dc520"),
    "roe/climbing": ("1ff523b5eae19aae", "f216bbabf244e8e4"),
    "maddpg/simple-spread": ("a5e0d2b392653067", "c2799371ed87bbf4"),
    "ernie/simple-spread": ("cb620e3625dfc54d", "158ddcf6bd8182b1"),
    "qarl-authors/inverted-pendulum": ("a6ad6e0ca3a6a3ee", "76e5c324bf99243b"),
    "rarl-authors/inverted-pendulum": ("73b949fc4fb0370d", "8f80a0478a0e57fc"),
    "pin/fsc-sentiment": ("e2824867423e1b64", "94928b114a9621d6"),  # re-recorded: see the module docstring
    "rlprompt/fsc-sentiment": ("aab1ad29529c0acc", "75bf7b5e3213dd82"),
    "dmix/climbing": ("2a70cf56352a9161", "b3b416869fb8f186"),
    "sac-per": ("b721fe5cac070e1b", "217abf8b557365f9"),
}


def test_every_pinned_run_has_a_recorded_hash():
    assert set(RECORDED) == set(PINNED)


@pytest.mark.skipif(torch.__version__.split("+")[0] != "2.13.0", reason="hashes recorded with torch 2.13.0 (CPU)")
@pytest.mark.parametrize("preset", sorted(PINNED))
def test_short_run_learns_the_recorded_parameters(preset, tmp_path):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        digest = run_hash(preset, tmp_path)
    finally:
        torch.set_num_threads(threads)
    run_dir = tmp_path / preset.replace("/", "-")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(key.startswith("loss/") for row in rows for key in row), "the pinned run took no update"
    assert digest in RECORDED[preset], f"{preset}: {digest} is none of the recorded {RECORDED[preset]}"
