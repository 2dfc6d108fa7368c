"""Policy evaluation: run whole episodes on a VecEnv and report returns.

Each of the E envs plays a fixed quota of the requested episodes (``episodes // E``, plus one for the
first ``episodes % E``), so short episodes are not over-represented, a bias of "first N finished".
"""

from __future__ import annotations

import torch

from envs.base import VecEnv


@torch.no_grad()
def run_episodes(
    agent,
    env: VecEnv,
    episodes: int,
    *,
    explore: bool = False,
    step: int = 0,
    seed: int | None = None,
    max_steps: int = 1_000_000,
) -> dict[str, torch.Tensor]:
    """Play ``episodes`` episodes; return ``{"returns": [episodes], "lengths": [episodes]}`` (CPU)."""
    num = env.num_envs
    device = env.device
    quota = torch.full((num,), episodes // num, dtype=torch.int64, device=device)
    quota[: episodes % num] += 1
    done_count = torch.zeros(num, dtype=torch.int64, device=device)
    running_return = torch.zeros(num, device=device)
    running_length = torch.zeros(num, dtype=torch.int64, device=device)
    returns, lengths = [], []
    obs = env.reset(seed=seed)
    state = agent.initial_state(num)
    for _ in range(max_steps):
        if bool((done_count >= quota).all()):
            break
        action, state = agent.act(obs, state, step=step, explore=explore)
        out = env.step(action)
        reward = out.reward if out.reward.dim() == 1 else out.reward.sum(-1)
        running_return += reward
        running_length += 1
        done = out.terminated | out.truncated
        counted = done & (done_count < quota)
        returns.append(running_return[counted].cpu())
        lengths.append(running_length[counted].cpu())
        done_count += counted
        running_return = running_return * ~done
        running_length = running_length * ~done
        obs = out.obs
        if hasattr(agent, "reset_state") and state is not None:
            state = agent.reset_state(state, done)
    return {"returns": torch.cat(returns)[:episodes], "lengths": torch.cat(lengths)[:episodes]}


def summarize(returns: torch.Tensor) -> dict[str, float]:
    """Mean, std (population), min and max of episode returns."""
    r = returns.to(torch.float64)
    return {
        "mean_reward": float(r.mean()),
        "std_reward": float(r.std(unbiased=False)) if r.numel() > 1 else 0.0,
        "min_reward": float(r.min()),
        "max_reward": float(r.max()),
        "episodes": int(r.numel()),
    }
