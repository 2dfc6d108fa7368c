"""Deep Q-Network: the discrete-action off-policy base that ERC-DQN extends.

Paper: Mnih et al., "Human-level control through deep reinforcement learning", Nature 518 (2015).
For a batch (s, a, r, s', d) with Q ``[B, A]`` from the online MLP and Qbar from the target MLP:

    y    = r + gamma (1 - d) max_a' Qbar(s', a')                      (detached)
    L_Q  = mean_b (Q(s_b, a_b) - y_b)^2          (loss="mse": no 1/2, as ERC's reference code)
         = mean_b Huber_1(Q(s_b, a_b) - y_b)     (loss="huber": Mnih et al.'s clipped error)
    Qbar <- (1 - polyak) Qbar + polyak Q   every ``target_every`` updates (polyak 1: a hard copy)

With prioritized replay (``train.prioritized``; Schaul et al., ICLR 2016, arXiv:1511.05952) the batch
carries importance weights w ``[B]`` and each row's loss is scaled by its weight,

    L_Q  = mean_b w_b (Q(s_b, a_b) - y_b)^2       (or w_b Huber_1(...)),

and the update also returns ``td_error [B]`` = Q(s_b, a_b) - y_b (detached) for the new priorities.
Without weights the loss is the unweighted one above, computed exactly as before.

Acting is epsilon-greedy with epsilon = Linear(epsilon_start, epsilon_end, epsilon_anneal_steps)(step), a
pure function of the global env step (nothing to checkpoint). Variants override one named method,
:meth:`DQN.critic_loss` (ERC-DQN adds its regularizer there, see agents/erc.py).

Deviations from the reference (the ERC authors' CartPole DQN, docs/algorithms/dqn.md): none in the update.
``agent.update_after_steps`` delays updates while acting stays epsilon-greedy (the reference has no
random warm-up), so presets set the loop's ``train.update_after_steps=0`` (the loop's random warm-up);
the loop still samples (and the agent ignores) one batch per step before ``agent.update_after_steps``.
The two share one name because they are one concept, "no updates before env step N": a bare
``update_after_steps=N`` sets both, which is stable-baselines3's ``learning_starts`` (random actions
and no updates before N). Evaluation is greedy (epsilon 0); the
reference evaluated with epsilon 0.1. Time-limit ends bootstrap (the reference treated them as
terminal).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from agents.engine.config import AgentConfig, EnvConfig, RunConfig, doc
from agents.engine.evaluation import q_estimation_bias
from agents.engine.family import Family
from agents.engine.loops import TD_ERROR, OffPolicyConfig
from agents.engine.losses import hard_update, polyak_update, td_target
from agents.engine.nets import ACTIVATIONS, mlp
from agents.engine.schedules import Linear
from envs.base import DiscreteSpec


@dataclass(frozen=True)
class DQNConfig(AgentConfig):
    """DQN hyperparameters (defaults: the ERC authors' CartPole-v1 DQN; see docs/algorithms/dqn.md)."""

    hidden: tuple[int, ...] = doc("hidden layer widths of the Q-network", (128, 128), ge=1)
    activation: str = doc("hidden activation", "relu", choices=ACTIVATIONS)
    lr: float = doc("Adam learning rate", 1e-4, gt=0)
    gamma: float = doc("discount factor", 0.99, ge=0, le=1)
    loss: str = doc(
        "TD loss: 'mse' (mean squared error) or 'huber' (smooth L1, delta 1)", "mse", choices=("mse", "huber")
    )
    polyak: float = doc(
        "target step size: target <- (1 - polyak) target + polyak online; 1 = hard copy", 0.005, gt=0, le=1
    )
    target_every: int = doc("target step every k updates", 1, ge=1)
    epsilon_start: float = doc("exploration epsilon at step 0", 0.1, ge=0, le=1)
    epsilon_end: float = doc("exploration epsilon after epsilon_anneal_steps", 0.1, ge=0, le=1)
    epsilon_anneal_steps: int = doc("env steps of the linear epsilon ramp", 1, ge=0)
    update_after_steps: int = doc("no gradient updates before this env step (acting stays epsilon-greedy)", 0, ge=0)
    fused_adam: bool = doc("use the fused Adam kernel (same math, fewer kernel launches)", True)
    RENAMED = {"learning_starts": "update_after_steps", "epsilon_steps": "epsilon_anneal_steps"}


class DQN:
    """DQN agent; see the module docstring for the loss."""

    def __init__(self, obs_spec, action_spec: DiscreteSpec, config: DQNConfig, device: torch.device | str = "cpu"):
        if not isinstance(action_spec, DiscreteSpec) or action_spec.shape != ():
            raise ValueError("DQN needs one discrete action per env (Discrete space); use sac for Box actions")
        if config.loss not in ("mse", "huber"):
            raise ValueError(f"DQN loss must be 'mse' or 'huber', got {config.loss!r}")
        self.config = config
        self.device = torch.device(device)
        self.num_actions = action_spec.n
        self.q_network = mlp(obs_spec.dim, config.hidden, action_spec.n, config.activation).to(self.device)
        self.q_target = copy.deepcopy(self.q_network).requires_grad_(False)
        adam = {"fused": True} if config.fused_adam else {}
        self.optimizer = torch.optim.Adam(self.q_network.parameters(), lr=config.lr, **adam)
        self.epsilon = Linear(config.epsilon_start, config.epsilon_end, config.epsilon_anneal_steps)
        self.updates = 0  # gradient steps taken; drives the target cadence

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = True):
        """Epsilon-greedy (greedy when ``explore=False``) int64 actions ``[N]``."""
        greedy = self.q_network(obs.reshape(obs.shape[0], -1)).argmax(-1)
        if not explore:
            return greedy, state
        random = torch.randint(0, self.num_actions, greedy.shape, device=self.device)
        explore_mask = torch.rand(greedy.shape, device=self.device) < self.epsilon(step)
        return torch.where(explore_mask, random, greedy), state

    @torch.no_grad()
    def critic_target_value(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y = r + gamma (1 - terminated) max_a' Qbar(s', a'), shape [B]."""
        next_value = self.q_target(batch["next_obs"]).max(-1).values
        return td_target(batch["reward"], batch["terminated"], next_value, self.config.gamma)

    def critic_loss(self, q: torch.Tensor, target: torch.Tensor, batch: dict[str, torch.Tensor]):
        """L_Q = mean_b (Q - y)^2 (or Huber) for q ``[B]`` (at the taken actions) and target ``[B]``;
        with prioritized replay L_Q = mean_b w_b (Q - y)^2 for ``batch["weights"] [B]``.

        Returns ``(loss, metrics)``; a prioritized batch's metrics add ``td_error [B]`` = Q - y
        (detached), the rows' new priorities. Variants (ERC-DQN) override this to add terms.
        """
        weights = batch.get("weights")
        if weights is None:  # uniform replay: the original reductions, bit for bit
            if self.config.loss == "huber":
                loss = F.smooth_l1_loss(q, target)
            else:
                loss = (q - target).pow(2).mean()
            return loss, {"loss/critic": loss.detach(), "train/q_mean": q.detach().mean()}
        td_error = q - target  # [B]
        if self.config.loss == "huber":
            per_sample = F.smooth_l1_loss(q, target, reduction="none")
        else:
            per_sample = td_error.pow(2)
        loss = (weights * per_sample).mean()
        metrics = {"loss/critic": loss.detach(), "train/q_mean": q.detach().mean(), TD_ERROR: td_error.detach()}
        return loss, metrics

    def update(self, batch: dict[str, torch.Tensor], *, step: int) -> dict[str, torch.Tensor]:
        if step < self.config.update_after_steps:  # the reference's replay warm-up (see module docstring)
            return {}
        self.updates += 1
        target = self.critic_target_value(batch)
        q = self.q_network(batch["obs"]).gather(-1, batch["action"].unsqueeze(-1)).squeeze(-1)  # [B]
        loss, metrics = self.critic_loss(q, target, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.updates % self.config.target_every == 0:
            if self.config.polyak >= 1.0:
                hard_update(self.q_network.parameters(), self.q_target.parameters())
            else:
                polyak_update(self.q_network.parameters(), self.q_target.parameters(), self.config.polyak)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "q_network": self.q_network.state_dict(),
            "q_target": self.q_target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.q_target.load_state_dict(state["q_target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])


def evaluation_metrics(agent: DQN, env, config: RunConfig, step: int) -> dict[str, float]:
    """Q-estimation bias of the epsilon-greedy policy against its Monte-Carlo returns (no entropy bonus)."""

    def policy(obs: torch.Tensor):
        action, _ = agent.act(obs, step=step, explore=True)
        q = agent.q_network(obs).gather(-1, action.unsqueeze(-1)).squeeze(-1)
        return action, q, torch.zeros_like(q)

    result = q_estimation_bias(policy, env, gamma=agent.config.gamma, seed=config.train.seed + 200_000)
    return {f"eval/{key}": value for key, value in result.items()}


def cartpole(algo: str = "dqn", agent: DQNConfig | None = None) -> RunConfig:
    """CartPole-v1 as the ERC authors' DQN (ERC benchmark A): 60k steps, batch 256, updates from step 2000,
    eval 5 episodes every 2k."""
    return RunConfig(
        algo=algo,
        env=EnvConfig(id="CartPole-v1"),
        train=OffPolicyConfig(
            total_steps=60_000,
            update_after_steps=0,
            batch_size=256,
            eval_every=2_000,
            eval_episodes=5,
            checkpoint_every=10_000,
        ),
        agent=agent or DQNConfig(update_after_steps=2_000),
    )


PRESETS: dict[str, RunConfig] = {"dqn/cartpole": cartpole()}


def build(config: RunConfig, obs_spec, action_spec, device) -> DQN:
    return DQN(obs_spec, action_spec, config.agent, device)


FAMILY = Family(presets=PRESETS, build_agent=build, evaluation_metrics=evaluation_metrics)

__all__ = ["DQN", "DQNConfig", "FAMILY", "PRESETS", "build", "cartpole", "evaluation_metrics"]
