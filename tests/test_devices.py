"""The same engine checks on every device the machine has (CPU always; CUDA with ``-m cuda`` on a GPU).

Device is a config value (``train.device``): a tiny SAC run and a tiny multi-agent run train there,
their checkpoints load back on the CPU, and the replay buffer samples on the device it lives on.
"""

import torch

from agents import get_preset
from agents import run_training as train
from agents.api import load_policy
from agents.engine.buffers import TransitionBuffer
from agents.engine.config import apply_overrides


def test_buffer_samples_on_its_device(device):
    buffer = TransitionBuffer({"x": ((3,), torch.float32)}, 16, device=device, seed=0)
    buffer.extend({"x": torch.arange(24.0, device=device).view(8, 3)})
    batch = buffer.sample(5)
    assert batch["x"].device.type == device and batch["x"].shape == (5, 3)


def test_sac_trains_on_the_device_and_loads_on_cpu(tmp_path, device, tiny_env_overrides):
    overrides = ["agent.hidden=[16,16]", f"train.device={device}", *tiny_env_overrides["off_policy"]]
    run_dir = train(apply_overrides(get_preset("sac"), overrides), tmp_path / "run")
    policy = load_policy(run_dir, device="cpu")
    action, _ = policy.predict(torch.zeros(3).numpy())
    assert action.shape == (1,)


def test_multi_agent_learner_trains_on_the_device(tmp_path, device, tiny_env_overrides):
    overrides = ["agent.hidden_dim=8", f"train.device={device}", *tiny_env_overrides["episodic"]]
    run_dir = train(apply_overrides(get_preset("dmix/predator-prey"), overrides), tmp_path / "run")
    policy = load_policy(run_dir, device="cpu")
    assert policy.multi_agent and policy.step >= 60
