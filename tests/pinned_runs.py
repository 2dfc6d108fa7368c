"""Short, fixed-seed CPU runs of one preset per family, and a hash of what they learned.

The runner's refactors must not change what a run computes: ``tests/test_pinned_runs.py`` trains each
entry of :data:`PINNED` through the public API (``agents.train``) and compares the SHA-256 of the
final checkpoint's learners (every tensor of every learner's ``state_dict``, in key order) with the
value recorded before the refactor. ``python tests/pinned_runs.py`` prints the current hashes.

Runs are tiny by construction (a few hundred env steps, one torch thread, fixed seed), so the whole
table takes well under a minute on two cores.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import torch

# QARL-family runs (both players, the teacher): tiny networks, short phases, learners from the first steps
TWO_PLAYER_TINY = (
    "total_steps=600",
    "eval_every=0",
    "eval_episodes=1",
    "phase_min_steps=100",
    "update_after_transitions=50",
    "agent.protagonist.hidden=[16,16]",
    "agent.adversary.hidden=[16,16]",
    "agent.protagonist.actor_update_after_steps=0",
    "agent.adversary.actor_update_after_steps=0",
)

# preset -> (overrides, names of the checkpoint entries that hold learners)
COMMON = ("train.threads=1", "train.progress=false", "seed=3")
PINNED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sac": (
        ("total_steps=300", "update_after_steps=100", "eval_every=0", "eval_episodes=1", "agent.hidden=[16,16]"),
        ("agent",),
    ),
    "dqn/cartpole": (
        (
            "total_steps=400",
            "update_after_steps=100",
            "eval_every=0",
            "eval_episodes=1",
            "agent.hidden=[16]",
            "agent.update_after_steps=100",
        ),
        ("agent",),
    ),
    "erc-dqn/cartpole": (
        (
            "total_steps=300",
            "update_after_steps=100",
            "eval_every=0",
            "eval_episodes=1",
            "agent.hidden=[16]",
            "agent.update_after_steps=100",
        ),
        ("agent",),
    ),
    "qmix/climbing": (
        ("total_steps=300", "eval_every=0", "eval_episodes=1", "update_after_episodes=4", "batch_episodes=4"),
        ("agent",),
    ),
    "roe/climbing": (
        ("total_steps=300", "eval_every=0", "eval_episodes=1", "update_after_episodes=4", "batch_episodes=4"),
        ("agent",),
    ),
    "maddpg/simple-spread": (
        (
            "total_steps=300",
            "update_after_steps=100",
            "eval_every=0",
            "eval_episodes=1",
            "agent.hidden=[16,16]",
            "env.num_envs=2",
        ),
        ("agent",),
    ),
    "ernie/simple-spread": (
        (
            "total_steps=300",
            "update_after_steps=100",
            "eval_every=0",
            "eval_episodes=1",
            "agent.hidden=[16,16]",
            "env.num_envs=2",
        ),
        ("agent",),
    ),
    "qarl-authors/inverted-pendulum": (
        TWO_PLAYER_TINY,
        ("agent", "adversary", "teacher"),
    ),
    "rarl-authors/inverted-pendulum": (
        TWO_PLAYER_TINY,
        ("agent", "adversary"),
    ),
    "pin/fsc-sentiment": (
        (
            "total_steps=160",
            "eval_every=0",
            "eval_episodes=1",
            "env.num_envs=8",
            "update_after_episodes=8",
            "batch_episodes=8",
        ),
        ("agent",),
    ),
    "rlprompt/fsc-sentiment": (
        (
            "total_steps=160",
            "eval_every=0",
            "eval_episodes=1",
            "env.num_envs=8",
            "update_after_episodes=8",
            "batch_episodes=8",
        ),
        ("agent",),
    ),
    "dmix/climbing": (
        (
            "total_steps=300",
            "eval_every=0",
            "eval_episodes=1",
            "update_after_episodes=4",
            "batch_episodes=4",
            "train.prioritized=true",
        ),
        ("agent",),
    ),
    "sac-per": (
        (
            "total_steps=300",
            "update_after_steps=100",
            "eval_every=0",
            "eval_episodes=1",
            "agent.hidden=[16,16]",
            "train.prioritized=true",
        ),
        ("agent",),
    ),
}


def tensor_hash(state, digest=None):
    """SHA-256 over every tensor (and number) of a nested state dict, keys sorted."""
    digest = digest or hashlib.sha256()
    if isinstance(state, dict):
        for key in sorted(state, key=str):
            digest.update(str(key).encode())
            tensor_hash(state[key], digest)
    elif isinstance(state, (list, tuple)):
        for item in state:
            tensor_hash(item, digest)
    elif isinstance(state, torch.Tensor):
        digest.update(state.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(state, (int, float, bool, str)) or state is None:
        digest.update(repr(state).encode())
    return digest


def run_hash(preset: str, root: Path) -> str:
    """Train ``preset`` with its pinned overrides in ``root``; the hash of its final learners."""
    from agents import train
    from agents.engine.checkpoint import Checkpointer, load_checkpoint

    overrides, learners = PINNED[preset]
    name = preset.removesuffix("-per")  # "sac-per": the sac preset with prioritized replay
    run_dir = train(name, [*COMMON, *overrides], run_dir=root / preset.replace("/", "-"))
    state = load_checkpoint(Checkpointer(run_dir).latest())
    return tensor_hash({name: state[name] for name in learners}).hexdigest()[:16]


if __name__ == "__main__":
    torch.set_num_threads(1)
    names = sys.argv[1:] or list(PINNED)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f'    "{name}": "{run_hash(name, Path(tmp))}",', flush=True)
