"""Collector: steps a VecEnv with an agent and hands back batched transitions.

The collector owns the current observation, the agent's recurrent state, per-env running episode
return and length, and a window of recently finished episodes, all as tensors on the env's device.
Finished episodes are recorded with one scatter (rows that did not finish write to a spare slot),
so bookkeeping costs no host sync and no per-env Python loop.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.engine.checkpoint import restore_generator
from envs.base import BoxSpec, DiscreteSpec, VecEnv


class EpisodeStats:
    """Running returns/lengths of N envs and a ring of the last ``window`` finished episodes."""

    def __init__(self, num_envs: int, device: torch.device, window: int = 100):
        self.window = window
        self.running_return = torch.zeros(num_envs, device=device)
        self.running_length = torch.zeros(num_envs, dtype=torch.int64, device=device)
        # One extra slot at the end absorbs the writes of envs whose episode did not end.
        self.recent_return = torch.zeros(window + 1, device=device)
        self.recent_length = torch.zeros(window + 1, dtype=torch.int64, device=device)
        self.finished = torch.zeros((), dtype=torch.int64, device=device)  # episodes ever finished
        # Per-agent returns [N, agents] / [window + 1, agents], only once an env gives per-agent rewards.
        self.running_agent_return: torch.Tensor | None = None
        self.recent_agent_return: torch.Tensor | None = None

    def record(self, reward: torch.Tensor, done: torch.Tensor, any_done: bool | None = None) -> None:
        """Add ``reward [N]`` to the running sums; move envs with ``done [N]`` into the ring.

        Per-agent rewards ``[N, agents]`` count as their team total (the sum over agents) in the episode
        return; each agent's own return is kept too (ring ``recent_agent_return [window + 1, agents]``,
        allocated at the first such reward) and reported as ``rollout/ep_rew_mean_agent{k}``.
        ``any_done`` is an optional host-side hint (False: no episode ended this step), which host
        envs know for free; it skips the scatter without a device sync.
        """
        if reward.dim() > 1:  # [N, agents]: team total for the return, each agent's own in its ring
            if self.running_agent_return is None:
                self.running_agent_return = torch.zeros_like(reward)
                self.recent_agent_return = reward.new_zeros(self.window + 1, reward.shape[1])
            self.running_agent_return += reward
            reward = reward.sum(-1)
        self.running_return += reward
        self.running_length += 1
        if any_done is False:
            return
        order = torch.cumsum(done.to(torch.int64), 0) - 1  # rank of each finished env in this step
        slot = torch.where(done, (self.finished + order) % self.window, self.window)
        self.recent_return.index_copy_(0, slot, self.running_return)
        self.recent_length.index_copy_(0, slot, self.running_length)
        if self.running_agent_return is not None:
            self.recent_agent_return.index_copy_(0, slot, self.running_agent_return)
            self.running_agent_return *= (~done).unsqueeze(-1)
        self.finished += done.sum()
        keep = ~done
        self.running_return *= keep
        self.running_length *= keep

    def summary(self) -> dict[str, torch.Tensor]:
        """Mean return and length over the finished episodes in the window (NaN before the first)."""
        count = self.finished.clamp(max=self.window)
        valid = torch.arange(self.window, device=count.device) < count
        denom = count.to(torch.float32)
        out = {
            "rollout/ep_rew_mean": (self.recent_return[: self.window] * valid).sum() / denom,
            "rollout/ep_len_mean": (self.recent_length[: self.window] * valid).sum().to(torch.float32) / denom,
            "rollout/episodes": self.finished.clone(),
        }
        if self.recent_agent_return is not None:
            per_agent = (self.recent_agent_return[: self.window] * valid.unsqueeze(-1)).sum(0) / denom  # [agents]
            out.update({f"rollout/ep_rew_mean_agent{k}": value for k, value in enumerate(per_agent)})
        return out

    AGENT_KEYS = ("running_agent_return", "recent_agent_return")  # present once per-agent rewards were seen

    def state_dict(self) -> dict[str, Any]:
        keys = ("running_return", "running_length", "recent_return", "recent_length", "finished")
        state = {k: getattr(self, k).clone() for k in keys}
        if self.running_agent_return is not None:
            state.update({k: getattr(self, k).clone() for k in self.AGENT_KEYS})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if key in self.AGENT_KEYS and getattr(self, key) is None:
                setattr(self, key, value.clone().to(self.running_return.device))
            else:
                getattr(self, key).copy_(value)


def multi_agent_box(obs_spec: Any, action_spec: Any) -> bool:
    """True for a multi-agent env with continuous actions: obs ``[agents, D]`` and Box actions ``[agents, A]``.

    Its transitions store a reward per agent, ``[agents]``: the env's own ``[N, agents]`` rewards, or a team
    reward ``[N]`` copied to every agent by :class:`Collector`.
    """
    return (
        isinstance(action_spec, BoxSpec)
        and isinstance(obs_spec, BoxSpec)
        and len(action_spec.shape) == 2
        and len(obs_spec.shape) == 2
        and action_spec.shape[0] == obs_spec.shape[0]
    )


def random_actions(spec: BoxSpec | DiscreteSpec, num_envs: int, generator: torch.Generator, device) -> torch.Tensor:
    """Uniform actions: U[-1, 1] for a (canonical) Box, uniform indices for Discrete."""
    if isinstance(spec, DiscreteSpec):
        return torch.randint(0, spec.n, (num_envs, *spec.shape), generator=generator, device=device)
    return torch.rand((num_envs, *spec.shape), generator=generator, device=device) * 2.0 - 1.0


class Collector:
    """Steps ``env`` with ``agent`` (or uniformly random actions during warm-up).

    ``step`` returns transition rows ``{obs, action, reward, next_obs, terminated}``, each ``[N, ...]``,
    where ``next_obs`` is the true final observation for envs whose episode just ended, plus the
    ``info_fields`` of the step's info (per-sample tensors ``[N]``, e.g. ``temperature``).
    """

    def __init__(self, env: VecEnv, agent: Any, seed: int = 0, info_fields: tuple[str, ...] = ()):
        self.env = env
        self.info_fields = info_fields  # per-sample tensors of the step's info to add to the rows
        self.agent = agent
        self.device = env.device
        self.stats = EpisodeStats(env.num_envs, env.device)
        self.generator = torch.Generator(device=env.device)
        self.generator.manual_seed(seed + 7919)  # distinct stream from the buffer's and the agent's
        self.seed = seed
        self.obs: torch.Tensor | None = None
        self.state: Any = None
        # Multi-agent continuous envs store a reward per agent (see agents.engine.run.transition_fields).
        self._per_agent_rows = multi_agent_box(env.obs_spec, env.action_spec)

    def reset(self) -> None:
        self.obs = self.env.reset(seed=self.seed)
        self.state = self.agent.initial_state(self.env.num_envs)

    def restart(self) -> None:
        """Start new episodes in every env now (unseeded: the envs' generators continue), abandoning the
        running ones: their partial returns are dropped from the episode statistics."""
        if self.obs is None:
            self.reset()
            return
        self.obs = self.env.reset(seed=None)
        self.state = self.agent.initial_state(self.env.num_envs)
        self.stats.running_return.zero_()
        self.stats.running_length.zero_()

    def observation(self) -> torch.Tensor:
        """The envs' current observation ``[N, ...]`` (resetting them first if they have not started)."""
        if self.obs is None:
            self.reset()
        return self.obs

    def step(self, step: int, *, random: bool = False, action: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One step of the N envs: with uniformly random actions (``random``), the given ``action``
        ``[N, ...]`` (chosen for :meth:`observation` by someone else: the seed-batched loop acts for all
        its runs at once), or the agent's exploring action."""
        if self.obs is None:
            self.reset()
        if random:
            action = random_actions(self.env.action_spec, self.env.num_envs, self.generator, self.device)
        elif action is None:
            action, self.state = self.agent.act(self.obs, self.state, step=step, explore=True)
        out = self.env.step(action)
        self.stats.record(out.reward, out.terminated | out.truncated, out.info.get("episode_ended"))
        reward = out.reward
        if reward.dim() == 1 and self._per_agent_rows:  # a team reward [N], given to every agent: [N, agents]
            reward = reward.unsqueeze(-1).expand(-1, self.env.action_spec.shape[0])
        rows = {
            "obs": self.obs,
            "action": action,
            "reward": reward,
            "next_obs": out.final_obs,
            "terminated": out.terminated,
            "truncated": out.truncated,  # not stored by a TransitionBuffer (not in its spec); loops read it
        }
        for name in self.info_fields:  # e.g. the episode's temperature: one more replay field, not a subclass
            rows[name] = out.info[name]
        self.obs = out.obs
        return rows

    def state_dict(self) -> dict[str, Any]:
        env_state = self.env.state_dict() if hasattr(self.env, "state_dict") else None
        return {
            "obs": self.obs,
            "stats": self.stats.state_dict(),
            "generator": self.generator.get_state(),
            "env": env_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state["stats"])
        restore_generator(self.generator, state["generator"])
        if state.get("env") is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["env"])
            self.obs = state["obs"].to(self.device)
            self.state = self.agent.initial_state(self.env.num_envs)
        else:
            # The env cannot restore its state: start fresh episodes (running sums restart too).
            self.reset()
            self.stats.running_return.zero_()
            self.stats.running_length.zero_()
