"""Factorized (distributional) Q-learning for cooperative MARL: VDN, QMIX, DDN, DMIX and ROE.

One learner, configured by three choices (spec sections 2-4):

=======  =========  ===============  ========================================================
algo     mixer      head             fraction sampler
=======  =========  ===============  ========================================================
vdn      sum        scalar (K = 1)   none
qmix     qmix       scalar (K = 1)   none
ddn      sum        IQN              ``uniform`` U[0, 1]
dmix     qmix       IQN              ``uniform`` U[0, 1]
roe      sum/qmix   IQN              ``upper`` U[alpha(t_env), 1], alpha annealed 1 -> 0
=======  =========  ===============  ========================================================

Papers: VDN (Sunehag et al. 2017, arXiv 1706.05296), QMIX (Rashid et al., ICML 2018, arXiv
1803.11485), DFAC's DDN / DMIX (Sun, Lee, Lee, ICML 2021, arXiv 2102.07936; code j3soon/dfac),
ROE (Oh, Kim, Jeong, Yun, AAMAS 2023, arXiv 2303.01768; code osilab-kaist/smac_exp).

The agent network (``agent_net``, see ``agents.marl.nets``) is PyMARL's recurrent ``rnn_agent``
(``'gru'``, default) or a feed-forward two-layer trunk of the same width (``'mlp'``, BenchMARL's QMIX
agent); the heads, mixers and loss are the same for both.

Acting (per env row, one fraction set broadcast to all agents):

    taus [N, N_act] = sampler(step);  Q_i(u) = mean_k Z_i(h_i, u; tau_k)   -> epsilon-greedy over avail

Learning on a batch of padded episodes ``[B, T+1, ...]``:

    online taus [B, T+1, N], target taus [B, T+1, N'] (same sampler and alpha, independent draws)
    u'_i  = argmax_{u avail} mean_j Z^-_i(h_i^{t+1}, u; tau'_j)               (double_q: online net)
    y_j   = r_t + gamma (1 - d_t) Z^-_jt(s_{t+1}, u'; tau'_j)                      [B, T, N']
    L     = sum_{b,t} m_bt sum_k mean_j rho_{tau_k}(y_j - Z_jt(s_t, u_t; tau_k)) / sum m_bt
    (scalar heads: L = sum m (y - Q_jt)^2 / sum m, PyMARL's QMIX loss)

Episode-level prioritized replay (``train.prioritized``; Schaul et al., ICLR 2016, arXiv:1511.05952, on
whole episodes as PyMARL2 does: Hu et al., "Rethinking the Implementation Tricks and Monotonicity
Constraint in Cooperative Multi-Agent Reinforcement Learning", arXiv:2102.03479): each sampled episode
b carries an importance weight w_b ``[B]`` that scales all its steps,

    L     = sum_{b,t} w_b m_bt l_bt / sum_{b,t} m_bt          (l_bt: the per-step loss above)
    delta_bt = mean_j y_j - mean_k Z_jt(s_t, u_t; tau_k)              (the expected TD error, [B, T])
    priority error of episode b = sum_t m_bt |delta_bt| / sqrt(sum_t m_bt)     (returned as td_error [B])

Adam (lr 5e-4, eps 1e-5), global-norm clip 10, hard target copy every ``target_every``
updates. Evaluation (``explore=False``) is greedy at ``U[0, 1]`` whatever the schedule.

Deviations from the reference: (1) the target copy counts gradient updates, not episodes (equal
to PyMARL's count with one env and one update per episode, its setting); (2) the learner unrolls
the full padded length instead of trimming to the longest filled episode (trimming needs a host
sync; padded steps are masked); (3) the acting clock is the env step at the start of each
collection, as in PyMARL where ``t_env`` advances per episode; (4) evaluation draws from its own
generator so that testing never shifts the training random stream; (5) PyMARL2's episode priority is
defined for scalar heads; for quantile heads delta uses the means over the fractions (the expected TD
error), which is the scalar one when N = N' = 1, and its sampler keeps the priorities on the device.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agents.engine.checkpoint import restore_generator
from agents.engine.config import AgentConfig, doc
from agents.engine.loops import TD_ERROR
from agents.engine.losses import hard_update, quantile_huber_loss, td_target
from agents.engine.schedules import Linear
from agents.marl.mixers import make_mixer
from agents.marl.nets import FeedForwardAgentNet, RecurrentAgentNet, make_agent_net
from agents.marl.risk import UniformTaus, make_sampler
from envs.base import BoxSpec, DiscreteSpec

AgentNet = RecurrentAgentNet | FeedForwardAgentNet

# Written into the quantiles of unavailable actions before averaging, as the reference does, so they
# never win an argmax (a finite value keeps the mean finite where -inf would give nan).
UNAVAILABLE = -9_999_999.0


def greedy_actions(z: torch.Tensor, avail_actions: torch.Tensor) -> torch.Tensor:
    """``argmax_{u available} mean_k Z(u; tau_k)``: ``z [..., A, K]``, ``avail [..., A]`` -> ``[...]``.

    The one masked argmax of acting and of the target action.
    """
    return z.masked_fill(~avail_actions.unsqueeze(-1), UNAVAILABLE).mean(-1).argmax(-1)


def episode_td_error(joint: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """An episode's priority error (PyMARL2): ``sum_t m_t |delta_t| / sqrt(sum_t m_t)`` -> ``[B]``.

    ``joint [B, T, N]`` and ``target [B, T, N']`` are quantiles (N = N' = 1 for scalar heads),
    ``mask [B, T]``; delta_t = mean(target) - mean(joint), the TD error of the expected values. The
    square root sits between a sum (long episodes dominate) and a mean (one bad step is diluted).
    An empty episode (no filled step) gets 0; the sampler's eps keeps it drawable.
    """
    delta = target.mean(-1) - joint.mean(-1)  # [B, T]
    return (delta.abs() * mask).sum(1) / mask.sum(1).clamp(min=1.0).sqrt()


@dataclass(frozen=True)
class MarlConfig(AgentConfig):
    """Settings of the factorized (distributional) Q-learner. Defaults: DFAC's DMIX on SMAC.

    The run's ``train.seed`` seeds the weights and the acting / training generators; ``train.device``
    places them (both passed to the learner, not kept here).
    """

    mixer: str = doc("'sum' (VDN / DDN) or 'qmix' (QMIX / DMIX)", "qmix", choices=("sum", "qmix"))
    distributional: bool = doc("IQN quantile head (DDN / DMIX / ROE) instead of a scalar Q head (VDN / QMIX)", True)
    taus: str = doc(
        "fraction sampler: 'uniform' (DFAC), 'upper' (ROE), 'signed', 'random'",
        "uniform",
        choices=("uniform", "upper", "signed", "random"),
    )
    risk_start: float = doc("risk level alpha_0 at t_env = 0 (region [alpha, 1])", 1.0, ge=-1, le=1)
    risk_end: float = doc("risk level alpha_end after the anneal", 0.0, ge=-1, le=1)
    risk_anneal_steps: int = doc("env steps T_alpha of the linear risk anneal", 50_000, ge=0)
    shift_training_taus: bool = doc("use the acting sampler in both loss passes too (ROE code); false = U[0,1]", True)
    n_taus_online: int = doc("fractions N of the online net in the loss (DMIX 8, DDN 1)", 8, ge=1)
    n_taus_target: int = doc("fractions N' of the target net in the loss (DMIX 8, DDN 1)", 8, ge=1)
    n_taus_act: int = doc("fractions N_hat averaged when acting", 32, ge=1)
    n_taus_eval: int = doc("fractions averaged at evaluation (always U[0,1])", 32, ge=1)
    agent_net: str = doc(
        "'gru' (PyMARL rnn_agent, default) or 'mlp' (feed-forward trunk of the same width, as BenchMARL's QMIX "
        "and the ROE matrix-game setup)",
        "gru",
        choices=("gru", "mlp"),
    )
    mlp_activation: str = doc(
        "activation of the 'mlp' trunk: 'tanh' (BenchMARL's default MLP) or 'relu'", "tanh", choices=("tanh", "relu")
    )
    hidden_dim: int = doc("agent width H (GRU rnn_hidden_dim, or both layers of the 'mlp' trunk)", 64, ge=1)
    quantile_embed_dim: int = doc("cosine features d of the IQN embedding", 64, ge=1)
    mixing_embed_dim: int = doc("QMIX mixing width E", 32, ge=1)
    hypernet_embed: int = doc("QMIX hyper-network width", 64, ge=1)
    obs_last_action: bool = doc("append the previous action (one-hot) to each agent's input", True)
    obs_agent_id: bool = doc("append the agent id (one-hot) to each agent's input", True)
    epsilon_start: float = doc("epsilon-greedy start", 1.0, ge=0, le=1)
    epsilon_end: float = doc("epsilon-greedy end", 0.05, ge=0, le=1)
    epsilon_anneal_steps: int = doc("env steps of the linear epsilon anneal", 50_000, ge=0)
    gamma: float = doc("discount", 0.99, ge=0, le=1)
    lr: float = doc("Adam learning rate", 5e-4, gt=0)
    adam_eps: float = doc("Adam epsilon", 1e-5, gt=0)
    grad_norm_clip: float = doc("global L2 gradient-norm clip", 10.0, gt=0)
    target_every: int = doc("gradient updates between hard target copies (PyMARL: 200 episodes)", 200, ge=1)
    double_q: bool = doc("pick the target action with the online net (off in DFAC's configs)", False)
    RENAMED = {"target_update_interval": "target_every", "device": "train.device", "seed": "train.seed"}


class FactorizedQLearner:
    """The MARL agent: ``act`` / ``initial_state`` / ``update`` / ``state_dict`` (Agent protocol).

    ``act`` takes the extra keyword ``avail_actions [N, agents, A]`` (bool) of multi-agent envs; its
    recurrent state is ``(hidden [N, agents, H], last_action_onehot [N, agents, A])`` (with
    ``agent_net='mlp'`` the hidden part is the last features, never read back).
    """

    def __init__(
        self,
        obs_spec: BoxSpec,
        state_spec: BoxSpec,
        action_spec: DiscreteSpec,
        config: MarlConfig,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ):
        self.config = cfg = config
        self.device = torch.device(device)
        self.n_agents, self.obs_dim = obs_spec.shape
        self.state_dim = state_spec.shape[0]
        self.n_actions = action_spec.n
        input_dim = self.obs_dim + self.n_actions * cfg.obs_last_action + self.n_agents * cfg.obs_agent_id
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
            torch.manual_seed(seed)
            embed = cfg.quantile_embed_dim if cfg.distributional else None
            self.net = make_agent_net(
                cfg.agent_net, input_dim, self.n_actions, cfg.hidden_dim, embed, cfg.mlp_activation
            ).to(self.device)
            self.mixer = make_mixer(
                cfg.mixer, self.n_agents, self.state_dim, cfg.mixing_embed_dim, cfg.hypernet_embed
            ).to(self.device)
        self.target_net = copy.deepcopy(self.net).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)
        self.params = list(self.net.parameters()) + list(self.mixer.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, eps=cfg.adam_eps, foreach=True)

        self.sampler = make_sampler(cfg.taus, cfg.risk_start, cfg.risk_end, cfg.risk_anneal_steps)
        self.train_sampler = self.sampler if cfg.shift_training_taus else UniformTaus()
        self.eval_sampler = UniformTaus()
        self.epsilon = Linear(cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_anneal_steps)
        self.act_generator = self._generator(seed + 1)
        self.eval_generator = self._generator(seed + 2)
        self.train_generator = self._generator(seed + 3)
        self.updates = 0
        self._agent_ids = torch.eye(self.n_agents, device=self.device)

    def _generator(self, seed: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return generator

    # ------------------------------------------------------------------------------------------
    # Shared pieces
    def build_inputs(self, obs: torch.Tensor, last_action_onehot: torch.Tensor) -> torch.Tensor:
        """``[o_i, onehot(u_i^{t-1}), onehot(i)]``: obs ``[..., agents, D]`` -> ``[..., agents, in]``."""
        parts = [obs]
        if self.config.obs_last_action:
            parts.append(last_action_onehot)
        if self.config.obs_agent_id:
            parts.append(self._agent_ids.expand(*obs.shape[:-1], self.n_agents))
        return torch.cat(parts, -1)

    def initial_state(self, num_envs: int) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = torch.zeros(num_envs, self.n_agents, self.config.hidden_dim, device=self.device)
        last = torch.zeros(num_envs, self.n_agents, self.n_actions, device=self.device)
        return hidden, last

    def utilities(self, net: AgentNet, hidden: torch.Tensor, taus: torch.Tensor | None) -> torch.Tensor:
        """``Z [B, agents, A, K]`` from ``hidden [B, agents, H]`` and shared fractions ``[B, K]``."""
        return net.head(hidden, taus if net.distributional else None)

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        state: Any = None,
        *,
        step: int,
        explore: bool = True,
        avail_actions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Joint action ``[N, agents]`` for ``obs [N, agents, D]``: epsilon-greedy on ``Q^alpha_i``, or
        greedy on the ``U[0,1]`` mean when ``explore=False``."""
        n = obs.shape[0]
        hidden, last = state if state is not None else self.initial_state(n)
        if avail_actions is None:
            avail_actions = torch.ones(n, self.n_agents, self.n_actions, dtype=torch.bool, device=self.device)
        hidden = self.net.recurrent(self.build_inputs(obs, last), hidden)
        sampler, generator = (self.sampler, self.act_generator) if explore else (self.eval_sampler, self.eval_generator)
        taus = None
        if self.net.distributional:
            k = self.config.n_taus_act if explore else self.config.n_taus_eval
            taus = sampler.sample((n, k), step=step, generator=generator)  # one set per env, shared by agents
        action = greedy_actions(self.utilities(self.net, hidden, taus), avail_actions)  # [N, agents]
        if explore:
            random = torch.multinomial(avail_actions.reshape(-1, self.n_actions).float(), 1, generator=generator).view(
                n, self.n_agents
            )
            pick = torch.rand(n, self.n_agents, generator=generator, device=self.device) < self.epsilon(step)
            action = torch.where(pick, random, action)
        last = nn.functional.one_hot(action, self.n_actions).float()
        return action, (hidden, last)

    # ------------------------------------------------------------------------------------------
    def unroll(self, net: AgentNet, batch: dict[str, torch.Tensor], taus: torch.Tensor | None) -> torch.Tensor:
        """``Z [B, T+1, agents, A, K]`` of ``net`` over whole episodes from a zero hidden state."""
        obs, actions = batch["obs"], batch["actions"]
        b, length = obs.shape[:2]
        last = nn.functional.one_hot(actions, self.n_actions).float()  # [B, T+1, agents, A]
        last = torch.cat([torch.zeros_like(last[:, :1]), last[:, :-1]], 1)  # previous action, zeros at t = 0
        inputs = self.build_inputs(obs, last)
        hiddens = net.sequence(inputs).reshape(b * length, self.n_agents, -1)  # [B*(T+1), agents, H]
        flat_taus = None if taus is None else taus.reshape(b * length, -1)
        z = self.utilities(net, hiddens, flat_taus)
        return z.reshape(b, length, self.n_agents, self.n_actions, -1)  # [B, T+1, agents, A, K]

    def td_loss(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The masked quantile-Huber (or squared TD) loss above and its diagnostics."""
        cfg = self.config
        b, length = batch["obs"].shape[:2]
        taus = taus_target = None
        if self.net.distributional:
            # Online draws first, then target draws: a fixed count and order (bit-for-bit baselines).
            taus = self.train_sampler.sample((b, length, cfg.n_taus_online), step=step, generator=self.train_generator)
            taus_target = self.train_sampler.sample(
                (b, length, cfg.n_taus_target), step=step, generator=self.train_generator
            )
        actions = batch["actions"][:, :-1]  # [B, T, agents]
        z = self.unroll(self.net, batch, taus)  # [B, T+1, agents, A, N]
        index = actions[..., None, None].expand(*actions.shape, 1, z.shape[-1])
        chosen = z[:, :-1].gather(3, index).squeeze(3)  # [B, T, agents, N]

        with torch.no_grad():  # the target side carries no gradient
            z_target = self.unroll(self.target_net, batch, taus_target)  # [B, T+1, agents, A, N']
            avail = batch["avail_actions"]
            chooser = z.detach() if cfg.double_q else z_target
            best = greedy_actions(chooser, avail)[:, 1:, :, None]  # [B, T, agents, 1]
            index = best[..., None].expand(*best.shape, z_target.shape[-1])
            next_z = z_target[:, 1:].gather(3, index).squeeze(3)  # [B, T, agents, N']
            next_joint = self.target_mixer(next_z, batch["state"][:, 1:])  # [B, T, N']
            # Only a true terminal stops bootstrapping; a time-limit end bootstraps from the final state.
            target = td_target(batch["reward"][:, :-1, None], batch["terminated"][:, :-1, None], next_joint, cfg.gamma)

        joint = self.mixer(chosen, batch["state"][:, :-1])  # [B, T, N]
        mask = batch["filled"][:, :-1].to(joint.dtype)  # [B, T]
        if self.net.distributional:
            per_step = quantile_huber_loss(
                joint.reshape(b * (length - 1), -1),
                target.reshape(b * (length - 1), -1),
                taus[:, :-1].reshape(b * (length - 1), -1),
            ).view(b, length - 1)
        else:
            per_step = (joint[..., 0] - target[..., 0]).pow(2)
        denominator = mask.sum().clamp(min=1.0)
        weights = batch.get("weights")
        if weights is None:  # uniform replay: the original reduction, bit for bit
            loss = (per_step * mask).sum() / denominator
        else:  # prioritized episodes: each episode's steps scaled by its importance weight [B]
            loss = (per_step * mask * weights[:, None]).sum() / denominator
        stats = {
            "train/q_joint": (joint.detach().mean(-1) * mask).sum() / denominator,
            "train/target": (target.mean(-1) * mask).sum() / denominator,
        }
        if weights is not None:
            stats[TD_ERROR] = episode_td_error(joint.detach(), target, mask)
        return loss, stats

    def update(self, batch: dict[str, torch.Tensor], *, step: int) -> dict[str, torch.Tensor]:
        """One gradient step on a batch of episodes; hard target copy every ``target_every``."""
        loss, stats = self.td_loss(batch, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.params, self.config.grad_norm_clip)
        self.optimizer.step()
        self.updates += 1
        if self.updates % self.config.target_every == 0:
            self.update_targets()
        return {
            "loss/td": loss.detach(),
            "train/grad_norm": grad_norm.detach(),
            "train/risk_level": torch.tensor(self.train_sampler.risk_level(step)),
            "train/epsilon": torch.tensor(self.epsilon(step)),
            **stats,
        }

    def update_targets(self) -> None:
        hard_update(self.net.parameters(), self.target_net.parameters())
        hard_update(self.mixer.parameters(), self.target_mixer.parameters())

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "mixer": self.mixer.state_dict(),
            "target_net": self.target_net.state_dict(),
            "target_mixer": self.target_mixer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "act_generator": self.act_generator.get_state(),
            "eval_generator": self.eval_generator.get_state(),
            "train_generator": self.train_generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.mixer.load_state_dict(state["mixer"])
        self.target_net.load_state_dict(state["target_net"])
        self.target_mixer.load_state_dict(state["target_mixer"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.act_generator, state["act_generator"])
        restore_generator(self.eval_generator, state["eval_generator"])
        restore_generator(self.train_generator, state["train_generator"])
        self.updates = int(state["updates"])
