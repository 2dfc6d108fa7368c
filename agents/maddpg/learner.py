"""MADDPG with ERNIE's terms: the config, the networks and the learner (see :mod:`agents.maddpg`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agents.engine.config import AgentConfig, ConfigError, RunConfig, doc
from agents.engine.losses import polyak_update, td_target
from agents.engine.nets import ACTIVATIONS, EnsembleLinear, activation
from agents.robustness.robust import (
    FORMS,
    SCALES,
    continuous_ernie_a_penalty,
    ernie_penalty,
    mean_field_penalty,
    padding_mask,
)
from envs.base import BoxSpec


@dataclass(frozen=True)
class MADDPGConfig(AgentConfig):
    """MADDPG hyperparameters and the ERNIE terms (defaults: the MPE settings of docs/algorithms/ernie.md)."""

    hidden: tuple[int, ...] = doc("hidden layer widths of every actor and critic", (64, 64), ge=1)
    activation: str = doc("hidden activation", "relu", choices=ACTIVATIONS)
    shared_parameters: bool = doc("one actor and one critic for all agents (agent id appended to inputs)", False)
    actor_lr: float = doc("actor Adam learning rate", 1e-3, gt=0)
    critic_lr: float = doc("critic Adam learning rate", 1e-3, gt=0)
    gamma: float = doc("discount factor", 0.95, ge=0, le=1)
    polyak: float = doc("target step size: target <- (1 - polyak) target + polyak online", 0.01, gt=0, le=1)
    max_grad_norm: float = doc("clip each agent's gradient norm to this (0: no clipping)", 0.5, ge=0)
    exploration_noise: float = doc("std of the Gaussian action noise while training (canonical [-1, 1])", 0.2, ge=0)
    ernie_weight: float = doc("ERNIE weight lambda on each actor's smoothness penalty (0: MADDPG)", 0.0, ge=0)
    ernie_radius: float = doc("ERNIE ball radius eps (observation units; relative: a fraction of |o|)", 0.3, gt=0)
    ernie_steps: int = doc("ERNIE ascent steps K of the inner maximization", 3, ge=1)
    ernie_step_size: float | None = doc("ERNIE ascent step eta (None: 2.5 eps / K)", None, gt=0)
    ernie_norm: str = doc("ERNIE ball: 'l2' (normalized steps) or 'linf' (sign steps)", "l2", choices=("l2", "linf"))
    ernie_form: str = doc(
        "'stackelberg' (differentiate through the K steps) or 'plain' (ERNIE w/o ST)", "stackelberg", choices=FORMS
    )
    ernie_scale: str = doc(
        "'absolute' perturbation; 'relative' (delta = u |o|); 'spread' (delta = u s, s each feature's std over the "
        "first training batch, measured once and checkpointed: a ball sized for the task)",
        "absolute",
        choices=(*SCALES, "spread"),
    )
    ernie_baseline_gaussian: bool = doc("Baseline-Gaussian: the penalty at a random delta of the PGD size", False)
    ernie_action_scale: float = doc(
        "half-width h of the env's own action range, in which D is measured: D = h^2 ||mu(o + delta) - mu(o)||^2 "
        "on the canonical [-1, 1] actions (0.5: MPE's [0, 1] actions, the units of the paper's lambda)",
        1.0,
        gt=0,
    )
    ernie_init_std: float | None = doc("std of the Gaussian start delta^0 (None: uniform in the ball)", 1e-3, ge=0)
    ernie_mean_field: tuple[int, ...] = doc(
        "mean-field form: (start, atoms, width) of the observation slice holding the other agents' states; "
        "the penalty then moves only those atoms, inside a 1-Wasserstein ball of radius ernie_radius (empty: off)",
        (),
        ge=0,
    )
    ernie_a_weight: float = doc("ERNIE-A weight on each critic's joint-action smoothness (0: off)", 0.0, ge=0)
    ernie_a_budget: int = doc("ERNIE-A: agents whose actions the worst case may change", 1, ge=1)
    ernie_a_steps: int = doc("ERNIE-A: sign-gradient steps per tried agent", 3, ge=1)


class AgentNets(nn.Module):
    """n small MLPs as one batched network: ``[n, B, in] -> [n, B, out]``.

    ``members`` = n (one network per agent) or 1 (shared: the agents' rows are stacked into one batch and the agent
    id is appended by the caller). Hidden layers are :class:`EnsembleLinear` (``baddbmm``).
    """

    def __init__(self, members: int, in_dim: int, hidden: tuple[int, ...], out_dim: int, act: str):
        super().__init__()
        self.members = members
        dims = (in_dim, *hidden, out_dim)
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        agents, batch = x.shape[0], x.shape[1]
        if self.members == 1:
            x = x.reshape(1, agents * batch, -1)  # every agent's rows through the one network
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index + 1 < len(self.layers):
                x = self.act(x)
        return x.reshape(agents, batch, -1)


def _clip_per_member(params: list[torch.Tensor], max_norm: float, members: int) -> None:
    """Scale the gradient of member m by min(1, max_norm / ||g_m||): ``clip_grad_norm_`` per agent network.

    Every parameter is ``[members, ...]``; ||g_m|| is over all of member m's parameters.
    """
    grads = [p.grad for p in params if p.grad is not None]
    squared = torch.stack([g.reshape(members, -1).pow(2).sum(1) for g in grads]).sum(0)  # [members]
    scale = (max_norm / (squared.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(members, *([1] * (g.dim() - 1))))


class MADDPG:
    """MADDPG (+ ERNIE); see the module docstring for the losses. Acts on obs ``[N, n, D]``."""

    def __init__(self, obs_spec: BoxSpec, action_spec: BoxSpec, config: MADDPGConfig, device="cpu", obs_dims=None):
        field = config.ernie_mean_field
        if field and (len(field) != 3 or min(field[1:]) < 1 or field[0] + field[1] * field[2] > obs_spec.shape[-1]):
            raise ConfigError(
                f"agent.ernie_mean_field={list(field)}: give [start, atoms, width] of a slice inside the "
                f"observation ({obs_spec.shape[-1]} features)"
            )
        if not (isinstance(action_spec, BoxSpec) and len(action_spec.shape) == 2 and len(obs_spec.shape) == 2):
            raise ConfigError(
                "maddpg / ernie need a multi-agent env with continuous actions (obs [agents, D], Box actions "
                "[agents, A]): set env.options.actions=continuous"
            )
        self.config = config
        self.device = torch.device(device)
        self.n_agents, self.obs_dim = obs_spec.shape
        self.action_dim = action_spec.shape[1]
        n, members = self.n_agents, 1 if config.shared_parameters else self.n_agents
        extra = n if config.shared_parameters else 0  # the one-hot agent id of shared networks
        self.actor = AgentNets(members, self.obs_dim + extra, config.hidden, self.action_dim, config.activation)
        critic_in = n * (self.obs_dim + self.action_dim) + extra
        self.critic = AgentNets(members, critic_in, config.hidden, 1, config.activation)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.members = members
        self.actor_params, self.critic_params = list(self.actor.parameters()), list(self.critic.parameters())
        self.actor_optimizer = torch.optim.Adam(self.actor_params, lr=config.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic_params, lr=config.critic_lr)
        self._agent_ids = torch.eye(n, device=self.device)  # [n, n]
        self._own_slot = torch.eye(n, dtype=torch.bool, device=self.device)[:, None, :, None]  # [k, 1, j, 1]
        # each agent's own observation length (the env's obs_dims): the penalty never moves the zero padding
        self.obs_mask = padding_mask(obs_dims, self.obs_dim, self.device)  # [n, D] or None
        self.obs_spread: torch.Tensor | None = None  # [n, D]: ernie_scale='spread', set by the first update
        self.updates = 0

    # ---- networks -----------------------------------------------------------------------------

    def _with_id(self, x: torch.Tensor) -> torch.Tensor:
        """Append agent k's one-hot id to row k of ``x [n, B, F]`` for shared networks (else unchanged)."""
        if not self.config.shared_parameters:
            return x
        ids = self._agent_ids[:, None, :].expand(x.shape[0], x.shape[1], self.n_agents)
        return torch.cat([x, ids], dim=-1)

    def policy_per_agent(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """mu_k(o_k) for obs ``[n, B, D]`` (agent-major) -> actions ``[n, B, A]`` in [-1, 1]; differentiable."""
        net = self.actor_target if target else self.actor
        return torch.tanh(net(self._with_id(obs)))

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic joint policy, obs ``[N, n, D]`` -> actions ``[N, n, A]``; differentiable (the attacks of
        evaluate.py need its gradient)."""
        return self.policy_per_agent(obs.transpose(0, 1)).transpose(0, 1)

    def q_values(self, obs: torch.Tensor, actions: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Q_k(o, a^k) for every agent k: obs ``[B, n, D]``, actions ``[B, n, A]`` (one joint action for all
        critics) or ``[n, B, n, A]`` (critic k's own joint action) -> ``[n, B]``."""
        batch = obs.shape[0]
        joint_obs = obs.reshape(1, batch, -1).expand(self.n_agents, batch, -1)  # [n, B, n D], no copy
        if actions.dim() == 3:
            joint_actions = actions.reshape(1, batch, -1).expand(self.n_agents, batch, -1)
        else:
            joint_actions = actions.reshape(self.n_agents, batch, -1)  # [n, B, n A]
        net = self.critic_target if target else self.critic
        return net(self._with_id(torch.cat([joint_obs, joint_actions], dim=-1))).squeeze(-1)

    def team_value(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """mean_k Q_k(o, a) for obs ``[N, n, D]``, actions ``[N, n, A]`` -> ``[N]`` (the malicious-agent evaluation
        minimizes it); differentiable."""
        return self.q_values(obs, actions).mean(0)

    # ---- acting -------------------------------------------------------------------------------

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = True, avail_actions=None):
        """a = clip(mu(o) + N(0, sigma^2), -1, 1) while exploring, else mu(o); obs ``[N, n, D]`` -> ``[N, n, A]``."""
        action = self.policy(obs)
        if explore and self.config.exploration_noise > 0:
            action = (action + self.config.exploration_noise * torch.randn_like(action)).clamp(-1.0, 1.0)
        return action, state

    # ---- learning -----------------------------------------------------------------------------

    def per_agent_reward(self, reward: torch.Tensor) -> torch.Tensor:
        """Rewards ``[B, n]`` as given, or a team reward ``[B]`` given to every agent; as agent-major ``[n, B]``."""
        if reward.dim() == 1:
            return reward.unsqueeze(0).expand(self.n_agents, -1)
        return reward.transpose(0, 1)

    @torch.no_grad()
    def critic_target_value(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y_k = r_k + gamma (1 - d) Qbar_k(o', mubar(o')) ``[n, B]`` (only ``terminated`` stops bootstrapping)."""
        next_obs = batch["next_obs"]
        next_action = self.policy_per_agent(next_obs.transpose(0, 1), target=True).transpose(0, 1)  # [B, n, A]
        next_q = self.q_values(next_obs, next_action, target=True)  # [n, B]
        return td_target(self.per_agent_reward(batch["reward"]), batch["terminated"], next_q, self.config.gamma)

    def critic_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_Q = sum_k mean_b (Q_k(o, a) - y_k)^2 (+ ERNIE-A); returns ``(loss, metrics)``."""
        target = self.critic_target_value(batch)
        q = self.q_values(batch["obs"], batch["action"])  # [n, B]
        per_agent = (q - target).pow(2).mean(1)  # [n]
        loss = per_agent.sum()
        metrics = {"loss/critic": per_agent.detach().mean(), "train/q_mean": q.detach().mean()}
        metrics.update({f"loss/critic_agent{k}": per_agent[k].detach() for k in range(self.n_agents)})
        cfg = self.config
        if cfg.ernie_a_weight > 0:  # never called at weight 0: its random starts would shift the RNG stream

            def q_sum(obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
                return self.q_values(obs, actions).sum(0)  # [R]: every critic's change counts

            penalty, _ = continuous_ernie_a_penalty(
                q_sum, batch["obs"], batch["action"], cfg.ernie_a_budget, steps=cfg.ernie_a_steps
            )
            loss = loss + cfg.ernie_a_weight * penalty
            metrics["train/ernie_a_penalty"] = penalty.detach()
        return loss, metrics

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_mu = sum_k [-mean_b Q_k(o, a with a_k = mu_k(o_k)) + lambda R_k]; returns ``(loss, metrics)``."""
        obs = batch["obs"].transpose(0, 1)  # [n, B, D]
        mu = self.policy_per_agent(obs)  # [n, B, A]
        stored = batch["action"].unsqueeze(0)  # [1, B, n, A]
        # critic k's joint action: agent k's slot from its actor, every other slot from the batch
        joint = torch.where(self._own_slot, mu.transpose(0, 1).unsqueeze(0), stored)  # [n, B, n, A]
        q = self.q_values(batch["obs"], joint)  # [n, B]
        per_agent = -q.mean(1)  # [n]
        loss = per_agent.sum()
        metrics = {"loss/actor": per_agent.detach().mean(), "train/action_abs_mean": mu.detach().abs().mean()}
        metrics.update({f"loss/actor_agent{k}": per_agent[k].detach() for k in range(self.n_agents)})
        cfg = self.config
        if cfg.ernie_weight > 0 and cfg.ernie_mean_field:
            penalty, delta = self.mean_field_penalty(obs)
        elif cfg.ernie_weight > 0:  # weight 0 must not call it: the attack draws random numbers
            spread = cfg.ernie_scale == "spread"
            if spread and self.obs_spread is None:
                raise RuntimeError("ernie_scale='spread' needs the observation spread: update() measures it")
            penalty, delta = ernie_penalty(
                self.policy_per_agent, obs, radius=cfg.ernie_radius, steps=cfg.ernie_steps,
                step_size=cfg.ernie_step_size, norm=cfg.ernie_norm, form=cfg.ernie_form,
                scale="absolute" if spread else cfg.ernie_scale, baseline_gaussian=cfg.ernie_baseline_gaussian,
                init_std=cfg.ernie_init_std, mask=None if self.obs_mask is None else self.obs_mask[:, None],
                feature_scale=self.obs_spread[:, None] if spread else None,
            )  # fmt: skip
        if cfg.ernie_weight > 0:
            # D in the env's own action units: h^2 times the canonical distance. The ascent that finds delta* is
            # the same at any h (normalized or sign steps), so scaling the penalty is exact.
            if cfg.ernie_action_scale != 1.0:
                penalty = penalty * cfg.ernie_action_scale**2
            # the penalty is a mean over the n * B (agent, sample) rows; sum_k mean_b R_k is n times it
            loss = loss + cfg.ernie_weight * self.n_agents * penalty
            metrics["train/ernie_penalty"] = penalty.detach()
            metrics["train/ernie_delta_norm"] = delta.norm(dim=-1).mean()
        return loss, metrics

    def mean_field_penalty(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ERNIE against the worst mean field: obs ``[n, B, D]``; the slice ``start : start + M w`` of each row is
        the empirical distribution of M atoms of width w (the other agents' relative positions), moved inside
        {(1/M) sum_i ||delta_i||_2 <= eps} (:func:`agents.robustness.robust.mean_field_penalty`); the rest of the
        observation is not perturbed. Returns ``(penalty [], delta [n, B, M, w])``."""
        cfg = self.config
        start, atoms, width = cfg.ernie_mean_field
        end = start + atoms * width
        head, tail = obs[..., :start], obs[..., end:]

        def policy(own: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
            return self.policy_per_agent(torch.cat([head, moved.flatten(-2), tail], dim=-1))

        field = obs[..., start:end].unflatten(-1, (atoms, width))  # [n, B, M, w]
        return mean_field_penalty(
            policy, obs, field, radius=cfg.ernie_radius, steps=cfg.ernie_steps, step_size=cfg.ernie_step_size,
            form=cfg.ernie_form, baseline_gaussian=cfg.ernie_baseline_gaussian, init_std=cfg.ernie_init_std,
        )  # fmt: skip

    def _step(self, loss, optimizer, params, max_norm) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=params)  # the other networks get no gradient at all
        if max_norm > 0:
            _clip_per_member(params, max_norm, self.members)
        optimizer.step()

    def update(self, batch: dict[str, torch.Tensor], *, step: int) -> dict[str, torch.Tensor]:
        """One critic step and one actor step of every agent, then the Polyak step of both targets."""
        self.updates += 1
        if self.config.ernie_scale == "spread" and self.obs_spread is None:
            # the ball's per-feature size: each agent's observation spread over the first batch (warm-up data)
            self.obs_spread = batch["obs"].detach().std(0)  # [n, D]
        critic_loss, metrics = self.critic_loss(batch)
        self._step(critic_loss, self.critic_optimizer, self.critic_params, self.config.max_grad_norm)
        actor_loss, actor_metrics = self.actor_loss(batch)
        self._step(actor_loss, self.actor_optimizer, self.actor_params, self.config.max_grad_norm)
        metrics.update(actor_metrics)
        polyak_update(self.critic_params, list(self.critic_target.parameters()), self.config.polyak)
        polyak_update(self.actor_params, list(self.actor_target.parameters()), self.config.polyak)
        return metrics

    # ---- persistence --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "updates": self.updates,
            **({} if self.obs_spread is None else {"obs_spread": self.obs_spread}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("actor", "critic", "actor_target", "critic_target", "actor_optimizer", "critic_optimizer"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state["updates"])
        if "obs_spread" in state:
            self.obs_spread = state["obs_spread"].to(self.device)


def build(config: RunConfig, obs_spec, action_spec, device) -> MADDPG:
    obs_dims = None
    if config.agent.ernie_weight > 0:  # the penalty's padding mask; weight 0 (MADDPG) never probes the env
        from agents.robustness.multi_agent import env_obs_dims

        obs_dims = env_obs_dims(config)
    return MADDPG(obs_spec, action_spec, config.agent, device, obs_dims=obs_dims)
