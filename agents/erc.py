"""ERC: Eigensubspace Regularized Critic, for SAC and for DQN.

Paper: He, Zhou, Fang, Maghsudi, "Eigensubspace of Temporal-Difference Dynamics and How It Improves
Value Approximation in Reinforcement Learning", ECML PKDD 2023 (arXiv:2306.16750); code
github.com/sweetice/ERC-ECML-23. TD errors collapse onto the 1-eigensubspace (the constant
direction) of the transition kernel; ERC penalizes the in-batch spread of each critic's squared TD
error e_kb = (Q_k(s_b, a_b) - y_b)^2 around its detached batch mean (docs/algorithms/erc.md):

    R_k = mean_b min(beta (e_kb - sg[mean_b' e_kb'])^2, c)         (per sample clamp, per critic)
    L   = sum_k [mean_b e_kb + R_k]                                 (SAC: beta 0.005, c 0.01, twins)
    L   = mean_b e_b + beta mean_b (e_b - sg[mean e])^2             (DQN: beta 5e-4, no clamp)

:class:`ERC` and :class:`ERCDQN` override only ``critic_loss``; the base cadence (actor, temperature
and target every 2nd critic step) comes from SAC's options in the presets. Weight 0 is the matched
baseline (``erc-base/...``, ``erc-dqn-base/cartpole``), bit for bit SAC / DQN (tests/test_erc.py).

Diagnostics (ERC and its baseline alike): ``train/td_sq_mean``, ``train/td_sq_std`` (in-batch, mean
over critics), ``train/td_mean``, ``train/td_std``, ``train/erc_regularizer`` (sum_k R_k),
``train/erc_clamped_fraction``, ``train/erc_weight_deviation`` (max_b |w_b - 1|, w_b = 1 + 2 beta
(e_b - mean e) the per-sample gradient rescaling), ``train/erc_grad_ratio_q`` =
||dR/dQ|| / ||dTD/dQ|| over the batch's Q values (analytic, every update; exact for the MSE TD loss),
and every ``diagnostics_every`` updates ``train/erc_grad_ratio`` = ||grad_theta R|| / ||grad_theta TD||
over all critic parameters (two extra backward passes; skipped under SAC's ``compile``). At each
evaluation ``eval/q_bias`` and ``eval/q_bias_std``: (Q - G) / |mean G| against Monte-Carlo soft
returns G of the stochastic policy (agents/engine/evaluation.py).

Deviations from the reference: SAC's critic loss carries a factor 1/2, so the SAC variant minimizes
1/2 sum_k [mean e + R_k], half the reference's loss: same minimizer, and Adam's steps are invariant
to a constant loss scale up to its eps (1e-8). The actor uses SAC's clamped log-std [-20, 2] and
PyTorch's default init (reference: tanh-bounded [-10, 2], orthogonal init).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from agents import dqn
from agents.engine.config import EnvConfig, RunConfig, doc
from agents.engine.evaluation import q_estimation_bias
from agents.engine.family import Family
from agents.engine.loops import OffPolicyConfig
from agents.sac import SAC, SACConfig
from envs.dmc import DMC_TASKS


def erc_regularizer(td_error: torch.Tensor, weight: float, clamp: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """R_k = mean_b min(weight (e_kb - sg[mean_b e_kb])^2, clamp) for td_error ``[K, B]``.

    Returns ``(R [K], clamped [K, B] bool)``. The mean is detached (the reference does; with the clamp
    this changes the gradient), e is not (else the term does nothing). A clamped sample adds the
    constant ``clamp`` and no gradient. ``clamp=None``: no clamp (the DQN variant).
    """
    squared = td_error.pow(2)
    term = weight * (squared - squared.mean(-1, keepdim=True).detach()).pow(2)
    if clamp is None:
        return term.mean(-1), torch.zeros_like(term, dtype=torch.bool)
    return term.clamp(max=clamp).mean(-1), term.detach() > clamp


def regularized(agent, base: torch.Tensor, metrics: dict, td_error: torch.Tensor, scale: float, params):
    """``base + scale * sum_k R_k`` and the diagnostics; ``scale`` is the base loss's factor on mean e."""
    cfg = agent.config
    reg, clamped = erc_regularizer(td_error, cfg.regularizer_weight, cfg.regularizer_clamp)
    extra = scale * reg.sum()
    td, squared = td_error.detach(), td_error.detach().pow(2)
    # w - 1: ERC's rescaling of each sample's MSE gradient dR/dQ = (w - 1) d(mean e)/dQ
    deviation = 2 * cfg.regularizer_weight * (squared - squared.mean(-1, keepdim=True)) * ~clamped
    metrics.update({
        "train/td_sq_mean": squared.mean(-1).mean(), "train/td_sq_std": squared.std(-1).mean(),
        "train/td_mean": td.mean(-1).mean(), "train/td_std": td.std(-1).mean(),
        "train/erc_regularizer": reg.detach().sum(), "train/erc_weight_deviation": deviation.abs().max(),
        "train/erc_clamped_fraction": clamped.float().mean(),
        "train/erc_grad_ratio_q": (deviation * td).norm() / td.norm().clamp(min=1e-30),
    })  # fmt: skip
    compiled = getattr(cfg, "compile", False)  # autograd.grad and the step branch would break the graph
    if cfg.diagnostics_every and not compiled and agent.updates % cfg.diagnostics_every == 0:
        # autograd.grad leaves .grad alone, so the update is unchanged (weight 0 stays SAC bit for bit)
        td_grads = torch.autograd.grad(base, params, retain_graph=True, materialize_grads=True)
        reg_grads = torch.autograd.grad(extra, params, retain_graph=True, materialize_grads=True)
        norm = lambda grads: torch.stack([g.pow(2).sum() for g in grads]).sum().sqrt()
        metrics["train/erc_grad_ratio"] = norm(reg_grads) / norm(td_grads).clamp(min=1e-30)
    return base + extra, metrics


@dataclass(frozen=True)
class ERCConfig(SACConfig):
    """SAC + ERC; regularizer defaults from the authors' DMControl code."""

    regularizer_weight: float = doc("ERC weight beta (0: the SAC baseline)", 0.005, ge=0)
    regularizer_clamp: float | None = doc("per-sample clamp c of beta (e - mean e)^2 (None: no clamp)", 0.01, gt=0)
    diagnostics_every: int = doc("log the regularizer/TD gradient-norm ratio every k updates (0: never)", 100, ge=0)


@dataclass(frozen=True)
class ERCDQNConfig(dqn.DQNConfig):
    """DQN + ERC; regularizer defaults from the authors' CartPole code (no clamp)."""

    regularizer_weight: float = doc("ERC weight beta (0: the DQN baseline)", 5e-4, ge=0)
    regularizer_clamp: float | None = doc("per-sample clamp c of beta (e - mean e)^2 (None: no clamp)", None, gt=0)
    diagnostics_every: int = doc("log the regularizer/TD gradient-norm ratio every k updates (0: never)", 100, ge=0)


class ERC(SAC):
    def critic_loss(self, q: torch.Tensor, target: torch.Tensor, batch: dict[str, torch.Tensor]):
        """SAC's 1/2 sum_k mean_b e_kb plus 1/2 sum_k R_k, q ``[K, B]``, target ``[B]``."""
        loss, metrics = super().critic_loss(q, target, batch)
        return regularized(self, loss, metrics, q - target, 0.5, self._critic_params)


class ERCDQN(dqn.DQN):
    def critic_loss(self, q: torch.Tensor, target: torch.Tensor, batch: dict[str, torch.Tensor]):
        """DQN's mean_b e_b plus R, q and target ``[B]`` (one critic: K = 1)."""
        loss, metrics = super().critic_loss(q, target, batch)
        return regularized(self, loss, metrics, (q - target).unsqueeze(0), 1.0, list(self.q_network.parameters()))


def evaluation_metrics(agent, env, config: RunConfig, step: int) -> dict[str, float]:
    """Q-estimation bias at each evaluation (SAC: soft returns, Q = min of the twins)."""
    if isinstance(agent, dqn.DQN):
        return dqn.evaluation_metrics(agent, env, config, step)

    def policy(obs: torch.Tensor):
        action, log_prob = agent.actor(obs)
        return action, agent.critic(obs, action).min(0).values, -agent.temperature * log_prob

    result = q_estimation_bias(policy, env, gamma=agent.config.gamma, seed=config.train.seed + 200_000)
    return {f"eval/{key}": value for key, value in result.items()}


def dmc(task: str, weight: float = 0.005) -> RunConfig:
    """The authors' DMC setting: SAC 256x256, lr 3e-4, alpha_0 0.1 with lr 1e-4, delayed
    actor/alpha/target (every 2nd critic step), batch 256, 25k random steps, UTD 1, 1M steps."""
    agent = ERCConfig(temperature_lr=1e-4, initial_temperature=0.1, policy_delay=2, target_every=2)
    train = OffPolicyConfig(total_steps=1_000_000, update_after_steps=25_000, eval_every=10_000, eval_episodes=10)
    return RunConfig("erc", EnvConfig(id=f"dmc:{task}"), train, dataclasses.replace(agent, regularizer_weight=weight))


PRESETS: dict[str, RunConfig] = {f"erc/dmc-{task}": dmc(task) for task in DMC_TASKS}
PRESETS.update({f"erc-base/dmc-{task}": dmc(task, weight=0.0) for task in DMC_TASKS})
PRESETS["erc-dqn/cartpole"] = dqn.cartpole("erc-dqn", ERCDQNConfig(update_after_steps=2_000))
PRESETS["erc-dqn-base/cartpole"] = dqn.cartpole(
    "erc-dqn", ERCDQNConfig(update_after_steps=2_000, regularizer_weight=0.0)
)


def build(config: RunConfig, obs_spec, action_spec, device):
    agent_class = ERCDQN if isinstance(config.agent, ERCDQNConfig) else ERC
    return agent_class(obs_spec, action_spec, config.agent, device)


FAMILY = Family(presets=PRESETS, build_agent=build, evaluation_metrics=evaluation_metrics)

__all__ = [
    "ERC",
    "ERCConfig",
    "ERCDQN",
    "ERCDQNConfig",
    "FAMILY",
    "PRESETS",
    "build",
    "erc_regularizer",
    "evaluation_metrics",
]
