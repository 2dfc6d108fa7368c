"""Shared test settings: one torch thread (tests are tiny; threads only add sync overhead)."""

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
torch.set_num_threads(1)


@pytest.fixture
def tiny_sac_overrides() -> list[str]:
    """Overrides that make the default SAC preset run in seconds."""
    return [
        "agent.hidden=[16,16]",
        "train.total_steps=300",
        "train.warmup_steps=100",
        "train.batch_size=32",
        "train.eval_every=0",
        "train.eval_episodes=2",
        "train.log_every=100",
        "train.checkpoint_every=100",
        "train.progress=false",
    ]
