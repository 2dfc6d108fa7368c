"""Soft Actor-Critic: the off-policy base that ERC and QARL extend.

Paper: Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905 (2018),
the version with a learned temperature. For a batch (s, a, r, s', d):

    y        = r + gamma (1 - d) [ min_k Qbar_k(s', a') - alpha log pi(a'|s') ],  a' ~ pi(.|s')
    L_Q      = 1/2 sum_k mean_b (Q_k(s, a) - y)^2
    L_pi     = mean_b [ alpha log pi(a~|s) - min_k Q_k(s, a~) ],                  a~ ~ pi(.|s)
    L_alpha  = -mean_b [ log alpha (log pi(a~|s) + H_target) ]
    Qbar    <- (1 - polyak) Qbar + polyak Q

The K critics are one :class:`~agents.engine.nets.QEnsemble` (one batched kernel per layer). The
actor step differentiates only with respect to the actor's parameters (``backward(inputs=...)``),
so no critic weight gradients are computed and then thrown away. ``policy_delay`` k runs the actor
and temperature step every k critic steps, ``target_every`` the Polyak step (TD3/ERC cadence).

Variants override one named method: :meth:`SAC.critic_loss` (ERC adds its regularizer there).

With prioritized replay (``train.prioritized``; Schaul et al., ICLR 2016, arXiv:1511.05952) the batch
carries importance weights w ``[B]``; the critic loss becomes
L_Q = 1/2 sum_k mean_b w_b (Q_k(s_b, a_b) - y_b)^2 and the update returns each row's TD error
``td_error [B]`` = mean_k |Q_k(s_b, a_b) - y_b| (detached) as its new priority.

Deviations from the reference: none in the update. (Prioritized replay, not in the paper, weights
only the critic loss: the actor and temperature losses are not TD losses and stay unweighted; a
row's priority uses the mean of its K critics' absolute TD errors.) Hyperparameters follow the paper's Table 1 and
stable-baselines3's defaults (they agree: lr 3e-4, batch 256, gamma 0.99, polyak 0.005, 256x256,
target entropy -|A|); the Pendulum preset takes rl-zoo3's learning rate 1e-3.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from agents.engine.config import AgentConfig, EnvConfig, RunConfig, check_finite, doc
from agents.engine.family import Family
from agents.engine.loops import TD_ERROR, OffPolicyConfig
from agents.engine.losses import polyak_update, td_target
from agents.engine.nets import ACTIVATIONS, QEnsemble, SquashedGaussianActor
from envs.base import BoxSpec

TEMPERATURES = ("learned", "fixed", "per-sample")  # SACConfig.temperature: where alpha comes from


@dataclass(frozen=True)
class SACConfig(AgentConfig):
    """SAC hyperparameters (defaults: Haarnoja et al. 2018, Table 1)."""

    hidden: tuple[int, ...] = doc("hidden layer widths of actor and critics", (256, 256), ge=1, min_items=1)
    activation: str = doc("hidden activation", "relu", choices=ACTIVATIONS)
    critics: int = doc("number of Q critics in the ensemble (min over them forms the target)", 2, ge=1)
    actor_lr: float = doc("actor Adam learning rate", 3e-4, gt=0)
    critic_lr: float = doc("critic Adam learning rate", 3e-4, gt=0)
    temperature_lr: float = doc("temperature (log alpha) Adam learning rate", 3e-4, gt=0)
    gamma: float = doc("discount factor", 0.99, ge=0, le=1)
    polyak: float = doc("target step size: target <- (1 - polyak) target + polyak online", 0.005, gt=0, le=1)
    initial_temperature: float = doc("initial entropy temperature alpha", 1.0, gt=0)
    temperature: str = doc(
        "entropy temperature alpha: 'learned' (towards the target entropy), 'fixed' (initial_temperature), "
        "'per-sample' (each sample's own alpha, read from the batch's 'temperature' field)",
        "learned",
        choices=TEMPERATURES,
    )
    target_entropy: float | None = doc("entropy target; None means -action_dim", None, check=check_finite)
    policy_delay: int = doc("actor and temperature step every k critic steps", 1, ge=1)
    target_every: int = doc("Polyak target step every k critic steps", 1, ge=1)
    actor_update_after_steps: int = doc(
        "no actor / temperature step before this step (the loop's clock: env steps; in QARL's phases the "
        "learner's own transitions)",
        0,
        ge=0,
    )
    fused_adam: bool = doc("use the fused Adam kernel (same math, fewer kernel launches)", True)
    compile: bool = doc("torch.compile the critic and actor objectives (slow start, faster steps)", False)
    RENAMED = {"learn_temperature": ("temperature", {True: "learned", False: "fixed"})}


class SAC:
    """SAC agent; see the module docstring for the losses."""

    def __init__(self, obs_spec: BoxSpec, action_spec: BoxSpec, config: SACConfig, device: torch.device | str = "cpu"):
        if not isinstance(action_spec, BoxSpec):
            raise ValueError("SAC needs a continuous (Box) action space; use dqn for discrete actions")
        self.config = config
        self.device = torch.device(device)
        obs_dim, action_dim = obs_spec.dim, action_spec.dim
        self.action_shape = action_spec.shape
        self.actor = SquashedGaussianActor(obs_dim, action_dim, config.hidden, config.activation).to(self.device)
        self.critic = QEnsemble(obs_dim, action_dim, config.hidden, config.critics, config.activation).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # Parameter lists walked once: the Polyak step runs every update (load_state_dict copies in
        # place, so these stay the live tensors).
        self._critic_params = list(self.critic.parameters())
        self._critic_target_params = list(self.critic_target.parameters())
        self.log_temperature = (
            torch.tensor(float(config.initial_temperature), device=self.device).log().requires_grad_()
        )
        self.target_entropy = float(-action_dim if config.target_entropy is None else config.target_entropy)
        adam = {"fused": True} if config.fused_adam else {}
        self.critic_optimizer = torch.optim.Adam(self._critic_params, lr=config.critic_lr, **adam)
        # Actor and temperature share one optimizer (two parameter groups, their own learning rates)
        # and one backward pass: their losses touch disjoint parameters, so the step is the same as
        # with two optimizers, at half the Python overhead.
        self.actor_params = list(self.actor.parameters())
        groups = [{"params": self.actor_params, "lr": config.actor_lr}]
        if config.temperature == "learned":
            groups.append({"params": [self.log_temperature], "lr": config.temperature_lr})
        self.actor_optimizer = torch.optim.Adam(groups, **adam)
        self._actor_step_inputs = [p for group in groups for p in group["params"]]
        self.updates = 0  # critic steps taken; drives the delayed cadences
        # torch.compile fuses each objective's forward and backward into generated kernels; the
        # optimizer steps stay eager (fused Adam is already one kernel per optimizer).
        compile_fn = torch.compile if config.compile else (lambda fn: fn)
        self._critic_objective = compile_fn(self.critic_objective)
        self._actor_objective = compile_fn(self.actor_objective)

    # ---- acting -------------------------------------------------------------------------------

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = True):
        obs = obs.reshape(obs.shape[0], -1)
        action = self.actor.sample(obs) if explore else self.actor.deterministic(obs)
        return action.reshape(-1, *self.action_shape), state

    # ---- learning -----------------------------------------------------------------------------

    @property
    def temperature(self) -> torch.Tensor:
        """The scalar alpha of the 'learned' and 'fixed' modes (0-dim)."""
        return self.log_temperature.detach().exp()

    def batch_temperature(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """alpha for the losses: the scalar (0-dim), or each sample's own ``batch["temperature"] [B]``
        in the 'per-sample' mode (QARL's adversary: its target and actor loss use each episode's alpha)."""
        if self.config.temperature == "per-sample":
            return batch["temperature"]
        return self.temperature

    @torch.no_grad()
    def critic_target_value(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """y = r + gamma (1 - terminated) (min_k Qbar_k(s', a') - alpha log pi(a'|s')), shape [B]."""
        next_action, next_log_prob = self.actor(batch["next_obs"])
        next_q = self.critic_target(batch["next_obs"], next_action).min(0).values
        soft_value = next_q - self.batch_temperature(batch) * next_log_prob
        return td_target(batch["reward"], batch["terminated"], soft_value, self.config.gamma)

    def critic_loss(self, q: torch.Tensor, target: torch.Tensor, batch: dict[str, torch.Tensor]):
        """L_Q = 1/2 sum_k mean_b (Q_k - y)^2 for q ``[K, B]`` and target ``[B]``; with prioritized
        replay L_Q = 1/2 sum_k mean_b w_b (Q_k - y)^2 for ``batch["weights"] [B]``.

        Returns ``(loss, metrics)``; a prioritized batch's metrics add ``td_error [B]`` =
        mean_k |Q_k - y| (detached), the rows' new priorities. Variants (ERC) override this to add terms.
        """
        td_error = q - target  # [K, B]
        weights = batch.get("weights")
        if weights is None:  # uniform replay: the original reduction, bit for bit
            loss = 0.5 * td_error.pow(2).mean(1).sum()
            return loss, {"loss/critic": loss.detach(), "train/q_mean": q.detach().mean()}
        loss = 0.5 * (weights * td_error.pow(2)).mean(1).sum()
        metrics = {"loss/critic": loss.detach(), "train/q_mean": q.detach().mean()}
        metrics[TD_ERROR] = td_error.detach().abs().mean(0)  # [B]
        return loss, metrics

    def critic_objective(self, batch: dict[str, torch.Tensor]):
        """Target, critic forward and :meth:`critic_loss`: ``(loss, metrics)`` (compiled as one graph)."""
        target = self.critic_target_value(batch)
        q = self.critic(batch["obs"], batch["action"])  # [K, B]
        return self.critic_loss(q, target, batch)

    def actor_objective(self, batch: dict[str, torch.Tensor]):
        """``(L_pi, log pi(a~|s) [B])`` with a~ reparameterised from the current actor."""
        action, log_prob = self.actor(batch["obs"])
        q = self.critic(batch["obs"], action).min(0).values
        return (self.batch_temperature(batch) * log_prob - q).mean(), log_prob

    def update_critic(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, metrics = self._critic_objective(batch)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        return metrics

    def update_actor_and_temperature(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        actor_loss, log_prob = self._actor_objective(batch)
        metrics = {"loss/actor": actor_loss.detach(), "train/entropy": -log_prob.detach().mean()}
        loss = actor_loss
        if self.config.temperature == "learned":
            temperature_loss = -(self.log_temperature * (log_prob.detach() + self.target_entropy)).mean()
            metrics["loss/temperature"] = temperature_loss.detach()
            loss = actor_loss + temperature_loss  # disjoint parameters: each gets its own loss's gradient
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=self._actor_step_inputs)  # critic weights get no gradient at all
        self.actor_optimizer.step()
        metrics["train/temperature"] = self.batch_temperature(batch).mean()
        return metrics

    def update(self, batch: dict[str, torch.Tensor], *, step: int) -> dict[str, torch.Tensor]:
        self.updates += 1
        metrics = self.update_critic(batch)
        if self.updates % self.config.policy_delay == 0 and step >= self.config.actor_update_after_steps:
            metrics.update(self.update_actor_and_temperature(batch))
        if self.updates % self.config.target_every == 0:
            polyak_update(self._critic_params, self._critic_target_params, self.config.polyak)
        return metrics

    # ---- persistence --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_temperature": self.log_temperature.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),  # actor and temperature groups
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_temperature.copy_(state["log_temperature"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.updates = int(state["updates"])


def _mujoco(env_id: str, **train: Any) -> RunConfig:
    """SAC on a MuJoCo v5 task: paper / stable-baselines3 settings, 10k random warm-up steps."""
    return RunConfig(
        algo="sac",
        env=EnvConfig(id=env_id),
        train=OffPolicyConfig(**{"total_steps": 1_000_000, "update_after_steps": 10_000, **train}),
        agent=SACConfig(),
    )


PRESETS: dict[str, RunConfig] = {
    # The default: a few minutes on 2 cores. lr 1e-3 from rl-zoo3's Pendulum-v1 SAC hyperparameters.
    "sac": RunConfig(
        algo="sac",
        env=EnvConfig(id="Pendulum-v1"),
        train=OffPolicyConfig(total_steps=20_000, update_after_steps=1_000, eval_every=2_000, checkpoint_every=5_000),
        agent=SACConfig(actor_lr=1e-3, critic_lr=1e-3, temperature_lr=1e-3),
    ),
    "sac/hopper": _mujoco("Hopper-v5"),
    "sac/halfcheetah": _mujoco("HalfCheetah-v5"),
    "sac/walker2d": _mujoco("Walker2d-v5"),
    "sac/ant": _mujoco("Ant-v5"),
    "sac/inverted-pendulum": _mujoco("InvertedPendulum-v5", total_steps=100_000),
}
PRESETS["sac/pendulum"] = PRESETS["sac"]


def build(config: RunConfig, obs_spec, action_spec, device) -> SAC:
    return SAC(obs_spec, action_spec, config.agent, device)


FAMILY = Family(presets=PRESETS, build_agent=build)

__all__ = ["FAMILY", "SAC", "SACConfig", "PRESETS", "build"]
