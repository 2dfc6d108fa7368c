"""Shared test settings: one torch thread (tests are tiny; threads only add sync overhead), and the tiny
SAC / MARL settings that several test files train with."""

import dataclasses
import os
import sys
from pathlib import Path

import pytest
import torch
from tiny import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download a model or a dataset
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
torch.set_num_threads(1)


@pytest.fixture
def tiny_sac_overrides() -> list[str]:
    """Overrides that make the default SAC preset run in seconds."""
    return [
        "agent.hidden=[16,16]",
        "train.total_steps=300",
        "train.update_after_steps=100",
        "train.batch_size=32",
        "train.eval_every=0",
        "train.eval_episodes=2",
        "train.log_every=100",
        "train.checkpoint_every=100",
        "train.progress=false",
    ]


@pytest.fixture
def tiny_marl_config():
    """A factory ``make(algo, **changes)``: the ``ALGORITHM_CONFIGS[algo]`` MARL learner with small networks and
    few quantile fractions (16 hidden units, 4 / 3 / 5 / 6 fractions online / target / act / eval, a target copy
    every 5 updates), then ``changes`` on top. Small enough that a learner trains for 100 steps in seconds."""
    from agents.marl import ALGORITHM_CONFIGS  # imported here: the SAC / DQN tests need no MARL import

    sizes = dict(
        hidden_dim=16,
        quantile_embed_dim=8,
        mixing_embed_dim=8,
        hypernet_embed=16,
        n_taus_online=4,
        n_taus_target=3,
        n_taus_act=5,
        n_taus_eval=6,
        target_every=5,
    )

    def make(algo, **changes):
        return dataclasses.replace(ALGORITHM_CONFIGS[algo], **{**sizes, **changes})

    return make


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")],
    ),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Run a test on the CPU and, where torch sees a GPU, again on CUDA (``-m cuda`` selects the GPU runs)."""
    return request.param


@pytest.fixture
def tiny_env_overrides() -> dict[str, list[str]]:
    """Overrides that shrink the default run of each loop to seconds (:data:`tiny.TINY_OVERRIDES`)."""
    return {loop: list(overrides) for loop, overrides in TINY_OVERRIDES.items()}
