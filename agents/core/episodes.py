"""Episode replay and episode collection for recurrent (multi-agent) learners.

``EpisodeBuffer`` is the episode counterpart of :class:`agents.core.buffers.TransitionBuffer`: the
same field spec (``{name: (shape, dtype)}`` for one *time step*), storage ``[capacity, T+1, *shape]``
preallocated on the device, ``extend`` writing E episodes in one indexed copy per field, and
uniform sampling with ``torch.randint`` from the buffer's own generator. A ``filled [capacity, T+1]``
bool field marks the real transitions of each padded episode.

``EpisodeCollector`` runs N multi-agent envs (:mod:`envs.multiagent`) for exactly ``episode_limit``
steps from a reset, recording one episode per env (PyMARL's parallel runner layout) and carrying
the agent's recurrent state. An env whose episode ended keeps stepping (it autoresets), but its
rows are masked out, so the loop has no data-dependent Python branch and no host sync per step.

Episode layout (time index t = 0..T, T = ``episode_limit``), the one the MARL learners read:

=================  =========================  =================================================
field              shape per step             meaning at row t
=================  =========================  =================================================
obs                ``[agents, D]``            observation at t (row ``len`` = the final obs)
state              ``[S]``                    global state at t (row ``len`` = final state)
avail_actions      ``[agents, A]`` bool       action mask at t (row ``len`` = final mask)
actions            ``[agents]`` int64         joint action taken at t (t < len)
reward             ``[]``                     team reward of step t
terminated         ``[]`` bool                step t ended in a true terminal state (no bootstrap)
filled             ``[]`` bool                t < len: row t is a real transition
=================  =========================  =================================================

Deviations from the reference: PyMARL's ``EpisodeBatch`` pads to ``episode_limit + 1`` and
stores the same fields; here the time limit is not a terminal (bootstrap from the final state), as
PyMARL does via its ``episode_limit`` info flag.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.core.buffers import FieldSpec, TransitionBuffer


def episode_fields(n_agents: int, obs_dim: int, state_dim: int, n_actions: int) -> FieldSpec:
    """The field spec (one time step) of a cooperative multi-agent episode, see the module table."""
    return {
        "obs": ((n_agents, obs_dim), torch.float32),
        "state": ((state_dim,), torch.float32),
        "avail_actions": ((n_agents, n_actions), torch.bool),
        "actions": ((n_agents,), torch.int64),
        "reward": ((), torch.float32),
        "terminated": ((), torch.bool),
        "filled": ((), torch.bool),
    }


class EpisodeBuffer(TransitionBuffer):
    """A ring buffer of padded episodes: a TransitionBuffer whose rows are whole episodes.

    Each field of the one-step spec is stored as ``[capacity, max_len, *shape]`` (``max_len`` is
    ``episode_limit + 1``: the extra row holds the final observation). ``extend`` takes
    ``[E, max_len, *shape]`` tensors and ``sample`` returns ``[batch, max_len, *shape]``; insertion,
    sampling and resume are the TransitionBuffer's own.
    """

    def __init__(
        self,
        fields: FieldSpec,
        capacity: int,
        max_len: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ):
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        if "filled" not in fields:
            raise ValueError("an episode buffer needs a 'filled' field (the real-step mask)")
        self.max_len = int(max_len)
        episode_spec = {name: ((self.max_len, *shape), dtype) for name, (shape, dtype) in fields.items()}
        super().__init__(episode_spec, capacity, device=device, seed=seed)


class EpisodeCollector:
    """Runs ``env.num_envs`` multi-agent envs for one episode each, keeping the agent's GRU state.

    The agent is called as ``agent.act(obs, state, step=, explore=, avail_actions=)`` and must
    return ``(actions [N, agents], new_state)``; ``agent.initial_state(N)`` gives the zero state.
    ``step`` passed to ``act`` is the env-step clock at the start of the collection (schedules are
    constant within one collection, as in PyMARL where ``t_env`` advances per episode).
    """

    def __init__(self, env: Any, agent: Any, seed: int | None = 0):
        self.env = env
        self.agent = agent
        self.num_envs = env.num_envs
        self.episode_limit = env.episode_limit
        self.device = env.device
        self.fields = episode_fields(env.n_agents, env.obs_spec.shape[-1], env.state_spec.shape[0], env.n_actions)
        self._seed = seed  # the first reset is seeded; later ones continue the env's own generator

    def state_dict(self) -> dict[str, Any]:
        """Whether the first (seeded) reset happened, and the env's generator: a resumed run replays."""
        state: dict[str, Any] = {"seed": self._seed}
        generator = getattr(self.env, "generator", None)
        if generator is not None:
            state["env_generator"] = generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._seed = state["seed"]
        if "env_generator" in state:
            self.env.generator.set_state(state["env_generator"])

    def new_episodes(self) -> dict[str, torch.Tensor]:
        """Zeroed ``[N, T+1, ...]`` tensors for one collection."""
        n, length = self.num_envs, self.episode_limit + 1
        return {
            name: torch.zeros((n, length, *shape), dtype=dtype, device=self.device)
            for name, (shape, dtype) in self.fields.items()
        }

    @torch.no_grad()
    def collect(self, *, step: int, explore: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One episode per env. Returns ``(episodes [N, T+1, ...], stats)``.

        ``stats``: ``return [N]`` (undiscounted team return), ``length [N]`` (int64), ``steps``
        (0-dim int64, the number of real env steps collected, i.e. ``filled.sum()``).
        """
        obs = self.env.reset(seed=self._seed)
        self._seed = None
        info = self.env.current_info()
        state, avail = info["state"], info["avail_actions"]
        hidden = self.agent.initial_state(self.num_envs)
        ep = self.new_episodes()
        active = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        for t in range(self.episode_limit):
            # Rows of finished episodes keep their final obs/state/mask (written at t = len).
            keep = active.view(-1, *([1] * (obs.dim() - 1)))
            ep["obs"][:, t] = torch.where(keep, obs, ep["obs"][:, t])
            ep["state"][:, t] = torch.where(active[:, None], state, ep["state"][:, t])
            ep["avail_actions"][:, t] = torch.where(active[:, None, None], avail, ep["avail_actions"][:, t])
            actions, hidden = self.agent.act(obs, hidden, step=step, explore=explore, avail_actions=avail)
            out = self.env.step(actions)
            ep["actions"][:, t] = torch.where(active[:, None], actions, 0)
            ep["reward"][:, t] = torch.where(active, out.reward, 0.0)
            ep["terminated"][:, t] = out.terminated & active
            ep["filled"][:, t] = active
            # The next row gets the true last observation of an episode that just ended.
            ep["obs"][:, t + 1] = out.final_obs
            ep["state"][:, t + 1] = out.info["final_state"]
            ep["avail_actions"][:, t + 1] = out.info["final_avail_actions"]
            active = active & ~(out.terminated | out.truncated)
            obs, state, avail = out.obs, out.info["state"], out.info["avail_actions"]
        stats = {
            "return": ep["reward"].sum(1),
            "length": ep["filled"].sum(1),
            "steps": ep["filled"].sum(),
        }
        return ep, stats
