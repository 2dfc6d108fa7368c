"""The QCOMBO learner (and ERNIE-QCOMBO, its weight-lambda variant) for the traffic-signal env ``traffic:grid``.

QCOMBO (Zhang, Yang and Zha, arXiv:1909.10651): a local Q-net shared by the lights, ``Q_loc(o_k, .) [2]``, acts
(each light switches or keeps, greedily on its own observation); a global Q-net ``Q_glob(s, .) [2^N]`` values
every joint action of the N lights; the consistency term ties the lights' mean local value to the global value
of the joint action. The three losses are the pure functions of :mod:`agents.traffic.qcombo_losses`:

    L = L_ind + L_glob + beta L_cons (+ lambda N R)

ERNIE (Bukharin et al., NeurIPS 2023, arXiv:2310.10810) adds ``lambda N R`` with
``R = mean_{b,k} max_{||delta|| <= eps} ||Q_loc(o_bk + delta) - Q_loc(o_bk)||^2`` (the mean over the B x N
(sample, light) rows, times N: the sum over lights of each light's batch mean), the inner max solved by
:func:`agents.robustness.robust.ernie_penalty` (K steps of projected gradient ascent, Stackelberg form by
default). ``ernie_weight = 0`` never calls the penalty, so the update is QCOMBO's bit for bit (tested).

Shapes: ``obs [B, N, D]`` (D = 17 measured features + time since the last change + the one-hot light id ``[N]``),
the global state ``s [B, 18 N]`` is read from the observations (every light's 17 features, then every light's
time since its last change: exactly the env's ``info["state"]``, tested), ``action [B, N]`` in {0, 1},
``reward [B]`` the global reward, ``agent_reward [B, N]`` the per-light rewards (the collector stores
``info["agent_reward"]``).

Deviations from the authors' code (see docs/algorithms/traffic.md):

* target networks (Polyak-averaged, ``polyak``) and detached targets; the authors' targets come from the online
  nets without ``detach`` and their target copies are never synchronised (spec P4);
* ERNIE regularises the local Q-net, the net that acts (the paper's appendix); the authors' code regularises the
  global net (``ernie_net='global'`` is that replication switch, perturbing the global state) (spec P1);
* the penalty is a per-sample mean of the squared l2 distance over an explicit l2 ball with normalised ascent
  steps (the code: a batch-Frobenius norm, raw-gradient steps, no ball) (spec P2, P5, P6); only the measured
  features and the time since the last change are perturbed, never the one-hot light id;
* epsilon-greedy on a linear schedule, rewards scaled by ``reward_scale`` inside the losses only, optional
  gradient-norm clipping.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from agents.engine.checkpoint import restore_generator
from agents.engine.config import AgentConfig, doc
from agents.engine.losses import polyak_update
from agents.engine.nets import ACTIVATIONS, mlp
from agents.engine.schedules import Linear
from agents.robustness.robust import FORMS, ernie_penalty
from agents.traffic.qcombo_losses import QCOMBO_BETA, qcombo_loss

FEATURES = 17  # measured features per light (queue, wait, delay, count per incoming edge; green axis)


@dataclass(frozen=True)
class QcomboConfig(AgentConfig):
    """QCOMBO hyperparameters (defaults: the authors' released traffic config where they exist) and ERNIE's term."""

    local_hidden: tuple[int, ...] = doc("hidden widths of the local Q-net (the authors' code: 64, 64)", (64, 64), ge=1)
    global_hidden: tuple[int, ...] = doc(
        "hidden widths of the global Q-net (the QCOMBO paper's 256, 256)", (256, 256), ge=1
    )
    activation: str = doc("hidden activation", "relu", choices=ACTIVATIONS)
    light_id: bool = doc(
        "the local Q-net reads the one-hot light id (the authors' input); false: only the light's own 18 "
        "features, so the policy runs on any grid size",
        True,
    )
    lr: float = doc("Adam learning rate of both nets", 1e-4, gt=0)
    gamma: float = doc("discount factor", 0.95, ge=0, le=1)
    beta: float = doc("consistency weight (the authors' qcombo_lam)", QCOMBO_BETA, ge=0)
    polyak: float = doc("target step: target <- (1 - polyak) target + polyak online, every update", 0.01, gt=0, le=1)
    reward_scale: float = doc("rewards are multiplied by this inside the losses (not in logged returns)", 1.0, gt=0)
    max_grad_norm: float = doc("clip each net's gradient norm to this (0: no clipping)", 10.0, ge=0)
    epsilon_start: float = doc("exploration epsilon per light at step 0", 0.1, ge=0, le=1)
    epsilon_end: float = doc("exploration epsilon after epsilon_anneal_steps", 0.02, ge=0, le=1)
    epsilon_anneal_steps: int = doc("env steps of the linear epsilon ramp", 20_000, ge=0)
    ernie_weight: float = doc("ERNIE weight lambda (0: QCOMBO)", 0.0, ge=0)
    ernie_net: str = doc(
        "which Q-net ERNIE smooths: 'local' (the net that acts) or 'global' (the authors' code)",
        "local",
        choices=("local", "global"),
    )
    ernie_radius: float = doc("ERNIE l2 ball radius eps (observation units)", 0.1, gt=0)
    ernie_steps: int = doc("ERNIE ascent steps K", 2, ge=1)
    ernie_step_size: float | None = doc("ERNIE ascent step eta (None: 2.5 eps / K)", None, gt=0)
    ernie_form: str = doc("'stackelberg' or 'plain' (ERNIE w/o ST)", "stackelberg", choices=FORMS)
    ernie_init_std: float | None = doc("std of the Gaussian start delta^0 (None: uniform in the ball)", 1e-3, ge=0)


def global_state(obs: torch.Tensor, n_lights: int) -> torch.Tensor:
    """obs ``[..., N, 18 + N]`` -> the env's global state ``[..., 18 N]``: every light's 17 features, then every
    light's time since its last change."""
    features = obs[..., :FEATURES].flatten(-2)
    since = obs[..., FEATURES]
    return torch.cat([features, since], -1)


class Qcombo:
    """QCOMBO (``ernie_weight = 0``) or ERNIE-QCOMBO; see the module docstring."""

    def __init__(self, obs_spec: Any, action_spec: Any, config: QcomboConfig, device: Any = "cpu", seed: int = 0):
        n, d = obs_spec.shape
        if action_spec.n != 2 or tuple(action_spec.shape) != (n,):
            raise ValueError(f"QCOMBO needs one binary action per light, got {action_spec}")
        if d != FEATURES + 1 + n:
            raise ValueError(f"QCOMBO needs the traffic env's observation [lights, 18 + lights], got {obs_spec.shape}")
        self.config, self.device, self.n_agents = config, torch.device(device), n
        self.input_dim = d if config.light_id else FEATURES + 1
        self.local_net = mlp(self.input_dim, config.local_hidden, 2, config.activation).to(self.device)
        self.global_net = mlp((FEATURES + 1) * n, config.global_hidden, 2**n, config.activation).to(self.device)
        self.local_target = copy.deepcopy(self.local_net).requires_grad_(False)
        self.global_target = copy.deepcopy(self.global_net).requires_grad_(False)
        self.local_optimizer = torch.optim.Adam(self.local_net.parameters(), lr=config.lr)
        self.global_optimizer = torch.optim.Adam(self.global_net.parameters(), lr=config.lr)
        self.epsilon = Linear(config.epsilon_start, config.epsilon_end, config.epsilon_anneal_steps)
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 104_729)
        # ERNIE perturbs the 18 measured inputs of a light, never its one-hot id
        mask = torch.zeros(self.input_dim, device=self.device)
        mask[: FEATURES + 1] = 1.0
        self.ernie_mask = mask
        self.updates = 0

    # -- networks -------------------------------------------------------------------------------
    def local_q(self, obs: torch.Tensor, net: Any = None) -> torch.Tensor:
        """obs ``[..., N, D]`` -> local Q-values ``[..., N, 2]`` (of ``net``, default the online local net)."""
        x = obs if self.config.light_id else obs[..., : FEATURES + 1]
        return (net or self.local_net)(x)

    def global_q(self, obs: torch.Tensor, net: Any = None) -> torch.Tensor:
        """obs ``[..., N, D]`` -> global Q-values ``[..., 2^N]`` of the state read from them."""
        return (net or self.global_net)(global_state(obs, self.n_agents))

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = True):
        """Per light: greedy on the local Q-net, epsilon-greedy when exploring; int64 ``[N_envs, lights]``.

        The local net is per light, so any number of lights is accepted when ``light_id`` is off."""
        greedy = self.local_q(obs.to(self.device)).argmax(-1)
        if not explore:
            return greedy, state
        random = torch.randint(0, 2, greedy.shape, generator=self.generator, device=self.device)
        flip = torch.rand(greedy.shape, generator=self.generator, device=self.device) < self.epsilon(step)
        return torch.where(flip, random, greedy), state

    # -- the loss ---------------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss of one update and its detached terms (``loss/...``, ``train/...``)."""
        cfg, obs = self.config, batch["obs"]
        scale = cfg.reward_scale
        q_local, q_global = self.local_q(obs), self.global_q(obs)
        with torch.no_grad():
            next_greedy = self.local_q(batch["next_obs"]).argmax(-1)
            next_local = self.local_q(batch["next_obs"], self.local_target)
            next_global = self.global_q(batch["next_obs"], self.global_target)
        terms = qcombo_loss(
            q_local, q_global, batch["action"], batch["agent_reward"] * scale, batch["reward"] * scale,
            next_local, next_global, next_greedy, batch["terminated"], cfg.gamma, cfg.beta,
        )  # fmt: skip
        loss = terms.total
        metrics = {
            "loss/total": terms.total.detach(),
            "loss/local": terms.local.detach(),
            "loss/global": terms.global_.detach(),
            "loss/consistency": terms.consistency.detach(),
            "train/q_local_mean": q_local.detach().mean(),
            "train/q_global_mean": q_global.detach().mean(),
        }
        if cfg.ernie_weight > 0:  # weight 0 never calls the penalty: the attack would consume random numbers
            penalty, delta = self.ernie_penalty(obs)
            loss = loss + cfg.ernie_weight * penalty
            metrics["loss/total"] = loss.detach()
            metrics["loss/ernie"] = penalty.detach()
            metrics["train/ernie_delta_norm"] = delta.norm(dim=-1).mean()
        return loss, metrics

    def ernie_penalty(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ERNIE's term: local net: ``N mean_{b,k} ||Q_loc(o_bk + delta*) - Q_loc(o_bk)||^2`` (the sum over lights
        of the batch means), delta* in an l2 ball per (sample, light) over the 18 measured inputs; global net:
        ``mean_b ||Q_glob(s_b + delta*) - Q_glob(s_b)||^2`` over the state. Returns (penalty, delta)."""
        cfg = self.config
        kwargs = dict(
            radius=cfg.ernie_radius, steps=cfg.ernie_steps, step_size=cfg.ernie_step_size, form=cfg.ernie_form,
            init_std=cfg.ernie_init_std, generator=self.generator,
        )  # fmt: skip
        if cfg.ernie_net == "global":
            return ernie_penalty(self.global_net, global_state(obs, self.n_agents), **kwargs)
        x = obs if cfg.light_id else obs[..., : FEATURES + 1]
        penalty, delta = ernie_penalty(self.local_net, x, mask=self.ernie_mask, **kwargs)
        return self.n_agents * penalty, delta

    def update(self, batch: dict[str, torch.Tensor], *, step: int) -> dict[str, torch.Tensor]:
        """One gradient step of both nets on ``batch`` (one backward pass, one Adam step each), then the targets."""
        loss, metrics = self.losses(batch)
        self.local_optimizer.zero_grad(set_to_none=True)
        self.global_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm > 0:
            for net in (self.local_net, self.global_net):
                torch.nn.utils.clip_grad_norm_(net.parameters(), self.config.max_grad_norm)
        self.local_optimizer.step()
        self.global_optimizer.step()
        with torch.no_grad():
            polyak_update(self.local_net.parameters(), self.local_target.parameters(), self.config.polyak)
            polyak_update(self.global_net.parameters(), self.global_target.parameters(), self.config.polyak)
        self.updates += 1
        metrics["train/epsilon"] = torch.tensor(self.epsilon(step))
        return metrics

    # -- checkpoints ------------------------------------------------------------------------------
    NETS = ("local_net", "global_net", "local_target", "global_target", "local_optimizer", "global_optimizer")

    def state_dict(self) -> dict[str, Any]:
        state = {name: getattr(self, name).state_dict() for name in self.NETS}
        return {**state, "generator": self.generator.get_state(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.NETS:
            getattr(self, name).load_state_dict(state[name])
        restore_generator(self.generator, state["generator"])
        self.updates = int(state["updates"])
