"""Robustness evaluation of multi-agent runs with continuous actions: ``evaluate.py`` conditions and policy wrappers.

The protocol of ERNIE's MPE experiments (Bukharin et al., "Robust Multi-Agent Reinforcement Learning via
Adversarial Regularization: Theoretical Foundation and Stable Algorithms", NeurIPS 2023, arXiv:2310.10810), for any
learner whose agent exposes the deterministic joint policy ``policy(obs [N, agents, D]) -> actions [N, agents, A]``
(differentiable; MADDPG / ERNIE in agents/maddpg/) and, for adversarial malicious agents, a centralized critic
``team_value(obs, actions) -> [N]``:

* ``--attack EPS ...`` (:class:`ObservationAttack`): at every step each agent's observation is replaced by the worst
  one in the l-inf ball of radius eps around it, found by 10 sign-PGD steps maximizing ||mu(o + delta) - mu(o)||^2
  from a random start (:func:`agents.robustness.robust.observation_attack`); the episodes use the clean
  evaluation's seeds,
  so the loss Delta = R(clean) - R(attacked) is paired.
* ``--value-attack EPS ...`` (the same class, ``target='value'``): the same ball, steps and random start, but the
  perturbation is chosen to LOWER the centralized critic's value of the joint action the perturbed agents take,
  -mean_k Q_k(o, mu(o + delta)) with o the true (clean) observations
  (:func:`agents.robustness.robust.value_drop`); needs ``team_value`` (:class:`agents.engine.agent.TeamCritic`).
  The critic is each run's own (MADDPG's, ERNIE's, ...), so the attacker knows exactly what the run's learner
  believes; an inaccurate critic makes a weaker attack, which the action-change attack does not
  depend on. Both attacks perturb only each agent's real features when observations are zero-padded to one width
  (``env.obs_dims``, the source of the Gaussian-noise mask).
* ``--agent-mass SCALE ...`` (:class:`AgentMassSweep`): every agent's mass scaled (MPE, VMAS), through
  :class:`envs.perturb_torch.AgentMass`.
* ``--malicious I ... --malicious-mode random|adversarial`` (:class:`MaliciousAgents`): the agents at those indices
  act uniformly at random, or adversarially: 10 sign-gradient steps on their own actions (in the box) that minimize
  the critic's team value mean_k Q_k(o, a) given the others' actions.
* ``--lipschitz`` (:class:`LipschitzMeter`): the Lipschitz meter (:mod:`agents.robustness.lipschitz`; local Jacobian
  spectral norm, PGD ratio, random-direction ratio) on a bank of each agent's observations from clean rollouts;
  mean, p95 and max over the bank, and each agent's mean.

Gaussian observation noise for these runs is :class:`agents.robustness.conditions.NoiseSweep` with the torch-level
:class:`envs.perturb_torch.ObservationNoiseVec`. Attacks live on the policy side (they need the policy's
gradients): :class:`AttackedAgent` and :class:`MaliciousAgent` wrap an agent and perturb before or after ``act``.

Deviations from the reference: the paper's MPE evaluation code is not public; the attack, its budget and the
malicious-agent search are this suite's (l-inf sign PGD; malicious agents follow ERNIE-A's idea of
worst-case actions of a few agents, scored by the learner's own critic).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from agents.engine.agent import DifferentiablePolicy, TeamCritic
from agents.engine.evaluation import episode_returns, summarize
from agents.robustness.context import Context, cells, table
from agents.robustness.robust import action_deviation, observation_attack, padding_mask, value_drop


class AgentWrapper:
    """An agent seen through a wrapper: every attribute it does not define comes from the wrapped agent."""

    def __init__(self, agent: Any):
        self.agent = agent

    def __getattr__(self, name: str) -> Any:
        if name == "agent":
            raise AttributeError(name)
        return getattr(self.agent, name)

    def initial_state(self, num_envs: int) -> Any:
        return self.agent.initial_state(num_envs)


ATTACK_TARGETS = ("action", "value")


class AttackedAgent(AgentWrapper):
    """Acts on o' = argmax_{||o' - o||_inf <= eps} ||mu(o') - mu(o)||^2 (``steps`` sign-PGD steps, random start).

    Every (env, agent) row of obs ``[N, agents, D]`` has its own ball. ``generator`` (on the agent's device) draws the
    random starts. ``deviation`` accumulates the mean squared action change the attack caused.

    ``target='value'`` instead picks o' to minimize the critic's team value of the joint action,
    ``team_value(o, mu(o'))`` (:func:`agents.robustness.robust.value_drop`); ``value_drop`` accumulates the mean drop
    team_value(o, mu(o)) - team_value(o, mu(o')). ``mask`` (``[agents, D]`` 0/1): only those features move.
    """

    def __init__(
        self,
        agent: Any,
        eps: float,
        steps: int = 10,
        generator: torch.Generator | None = None,
        target: str = "action",
        mask: torch.Tensor | None = None,
    ):
        super().__init__(agent)
        if target not in ATTACK_TARGETS:
            raise ValueError(f"unknown attack target {target!r}; choose from {list(ATTACK_TARGETS)}")
        self.eps, self.steps, self.generator, self.target, self.mask = eps, steps, generator, target, mask
        self.deviation, self.value_drop, self.calls = 0.0, 0.0, 0

    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = False, **kwargs):
        deviation = action_deviation(self.agent.policy, obs)
        if self.target == "value":
            objective = value_drop(self.agent.team_value, self.agent.policy, obs)
        else:
            objective = deviation
        attacked = observation_attack(
            objective, obs, eps=self.eps, steps=self.steps, generator=self.generator, mask=self.mask
        )
        with torch.no_grad():
            self.deviation += float(deviation(attacked).mean())
            if self.target == "value":
                self.value_drop += float((objective(attacked) - objective(obs)).mean())
            self.calls += 1
        return self.agent.act(attacked, state, step=step, explore=explore, **kwargs)


class MaliciousAgent(AgentWrapper):
    """The agents at ``indices`` act maliciously: ``mode='random'`` uniform in [-1, 1]; ``mode='adversarial'``
    a' = argmin over their actions of ``team_value(o, a)`` by ``steps`` sign-gradient steps of size 0.25 from a uniform
    start, clamped to the box (the other agents keep their policy's actions)."""

    def __init__(self, agent: Any, indices: list[int], mode: str, steps: int = 10, generator=None):
        super().__init__(agent)
        self.indices, self.mode, self.steps, self.generator = list(indices), mode, steps, generator

    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = False, **kwargs):
        action, state = self.agent.act(obs, state, step=step, explore=explore, **kwargs)  # [N, agents, A]
        bad = torch.zeros(action.shape[1], dtype=torch.bool, device=action.device)
        bad[self.indices] = True
        bad = bad[None, :, None]
        start = torch.rand(action.shape, generator=self.generator, device=action.device) * 2 - 1
        action = torch.where(bad, start, action)
        if self.mode == "adversarial":
            for _ in range(self.steps):
                with torch.enable_grad():
                    moved = action.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(self.agent.team_value(obs, moved).sum(), moved)
                action = torch.where(bad, (action - 0.25 * grad.sign()).clamp(-1.0, 1.0), action)
        return action, state


class RecordingAgent(AgentWrapper):
    """Records every observation it acts on (the Lipschitz meter's bank)."""

    def __init__(self, agent: Any):
        super().__init__(agent)
        self.seen: list[torch.Tensor] = []

    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = False, **kwargs):
        self.seen.append(obs.detach().clone())
        return self.agent.act(obs, state, step=step, explore=explore, **kwargs)


# ---- checks -------------------------------------------------------------------------------------


def continuous_multi_agent(context: Context) -> bool:
    """True for a multi-agent run with Box actions whose agent exposes a differentiable ``policy``."""
    from envs.base import BoxSpec

    run = context.run
    return context.multi_agent and isinstance(run.action_spec, BoxSpec) and isinstance(run.agent, DifferentiablePolicy)


def require_continuous_multi_agent(context: Context, option: str) -> None:
    """EnvError (one line) unless :func:`continuous_multi_agent`."""
    from envs import EnvError

    if not continuous_multi_agent(context):
        config = context.run.config
        raise EnvError(
            f"{option} needs a multi-agent run with continuous actions and a differentiable policy (maddpg, ernie); "
            f"{config.algo} on {config.env.id} is not one"
        )


def _paired(context: Context, agent: Any) -> dict[str, float]:
    """Summary of ``agent``'s episodes on the evaluation's seeds (the clean episodes' seeds: paired)."""
    result = episode_returns(
        context.run.family, context.run.config, agent, context.episodes, seed=context.seed, explore=context.explore,
        step=context.run.step, num_envs=min(context.num_envs, context.episodes),
    )  # fmt: skip
    return summarize(result["returns"], result["lengths"])


def env_obs_dims(config: Any) -> list[int] | None:
    """Each agent's own observation length in the run's env (``env.obs_dims``; None if the env does not say), from a
    one-env probe. The global random states (torch, numpy, random) are left as they were."""
    import random

    import numpy as np

    from envs import make_vec_env

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            env = make_vec_env(config.env.id, 1, device="cpu", seed=0, options=config.env.options,
                               wrappers=config.env.wrappers)  # fmt: skip
            try:
                dims = getattr(env, "obs_dims", None)
            finally:
                env.close()
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
    return None if dims is None else [int(d) for d in dims]


def run_padding_mask(context: Context) -> torch.Tensor | None:
    """``[agents, D]`` mask of the run's real observation features (None: nothing padded)."""
    return padding_mask(env_obs_dims(context.run.config), context.run.obs_spec.shape[-1], context.run.agent.device)


def _generator(context: Context) -> torch.Generator:
    generator = torch.Generator(device=context.run.agent.device)
    generator.manual_seed(context.seed + 7)
    return generator


def sweep_png(context: Context, name: str, xlabel: str, points: list[tuple[float, dict]]) -> str:
    """A PNG of mean return (+- std) against the swept value, ``RUN_DIR/eval/NAME.png``; returns its path."""
    from agents.robustness.plots import curves

    config = context.run.config
    series = {config.algo: [(x, stats["mean_reward"], stats["std_reward"]) for x, stats in points]}
    title = f"{config.algo} on {config.env.id}: return against {xlabel}"
    return str(curves(series, context.out_dir / f"{name}.png", title=title, xlabel=xlabel))


# ---- conditions ---------------------------------------------------------------------------------


class ObservationAttack:
    """The worst-case observation attack at each radius eps (l-inf, observation units); a PNG against eps.

    ``target='action'`` (``--attack``, JSON key ``observation_attack``): maximize the change of actions;
    ``target='value'`` (``--value-attack``, key ``value_attack``): minimize the run's own critic's value of the
    joint action. Same steps (``--attack-steps``), ball and random start, on the clean episodes' seeds.
    """

    def __init__(self, radii: list[float], steps: int, target: str = "action"):
        self.radii, self.steps, self.target = radii, steps, target
        self.key = "observation_attack" if target == "action" else "value_attack"
        self.option = "--attack" if target == "action" else "--value-attack"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--attack",
            type=float,
            nargs="+",
            metavar="EPS",
            help="worst-case observation attack radii (l-inf, multi-agent continuous runs)",
        )
        parser.add_argument(
            "--value-attack",
            type=float,
            nargs="+",
            metavar="EPS",
            help="value-aimed observation attack radii (l-inf): lower the run's own critic's value of the joint "
            "action (multi-agent continuous runs with a centralized critic)",
        )
        parser.add_argument("--attack-steps", type=int, default=10, metavar="K",
                            help="sign-PGD steps of both attacks (default: 10)")  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[ObservationAttack]:
        out = [cls(args.attack, args.attack_steps)] if args.attack else []
        if getattr(args, "value_attack", None):
            out.append(cls(args.value_attack, args.attack_steps, target="value"))
        return out

    def check(self, context: Context) -> None:
        from agents.engine.config import ConfigError

        require_continuous_multi_agent(context, self.option)
        if any(not eps > 0 for eps in self.radii):
            raise ConfigError(f"{self.option}: radii must be > 0, got {self.radii}")
        if self.steps < 1:
            raise ConfigError(f"--attack-steps must be at least 1, got {self.steps}")
        if self.target == "value" and not isinstance(context.run.agent, TeamCritic):
            raise ConfigError(f"--value-attack needs a centralized critic; {context.run.config.algo} has none")

    def run(self, context: Context) -> dict:
        clean = context.score()
        mask = run_padding_mask(context)
        results = []
        for eps in self.radii:
            attacked = AttackedAgent(context.run.agent, eps, self.steps, _generator(context), self.target, mask)
            stats = _paired(context, attacked)
            calls = max(attacked.calls, 1)
            row = {"eps": eps, **stats, "delta": clean["mean_reward"] - stats["mean_reward"],
                   "action_deviation": attacked.deviation / calls}  # fmt: skip
            if self.target == "value":
                row["value_drop"] = attacked.value_drop / calls
            results.append(row)
        rows = [[r["eps"], *cells(r), f"{r['delta']:.2f}"] for r in results]
        title = "observation attack" if self.target == "action" else "value-aimed observation attack (own critic)"
        print()
        print(table(f"{title} (l-inf sign PGD, paired episodes):", ["eps", "mean", "std", "min", "delta"],
                    [[0, *cells(clean), "0.00"], *rows]))  # fmt: skip
        png = sweep_png(context, self.key, "attack radius eps", [(0.0, clean)] + [(r["eps"], r) for r in results])
        return {"clean": clean, "steps": self.steps, "norm": "linf", "target": self.target,
                "masked": mask is not None, "results": results, "png": png}  # fmt: skip


class AgentMassSweep:
    """Every agent's mass scaled (MPE and VMAS envs), one fresh env per scale; a PNG against the scale."""

    key = "agent_mass"

    def __init__(self, scales: list[float]):
        self.scales = scales

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--agent-mass", type=float, nargs="+", metavar="SCALE",
                            help="scales of every agent's mass (MPE and VMAS continuous runs)")  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[AgentMassSweep]:
        return [cls(args.agent_mass)] if args.agent_mass else []

    def check(self, context: Context) -> None:
        from agents.engine.config import ConfigError
        from envs import EnvError

        require_continuous_multi_agent(context, "--agent-mass")
        if not context.run.config.env.id.startswith(("mpe:", "vmas:")):
            raise EnvError(f"--agent-mass needs an MPE or VMAS env; {context.run.config.env.id} is neither")
        if any(not scale > 0 for scale in self.scales):
            raise ConfigError(f"--agent-mass: scales must be > 0, got {self.scales}")

    def run(self, context: Context) -> list[dict]:
        results = [{"scale": s, **context.score([{"name": "agent_mass", "scale": s}])} for s in self.scales]
        print()
        print(table("agent mass:", ["scale", "mean", "std", "min"], [[r["scale"], *cells(r)] for r in results]))
        sweep_png(context, "agent_mass", "agent mass scale", [(r["scale"], r) for r in results])
        return results


class MaliciousAgents:
    """Some agents act maliciously (random or critic-adversarial actions); the rest keep the policy."""

    key = "malicious_agents"

    def __init__(self, indices: list[int], mode: str):
        self.indices, self.mode = indices, mode

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--malicious",
            type=int,
            nargs="+",
            metavar="I",
            help="indices of malicious agents (multi-agent continuous runs)",
        )
        parser.add_argument("--malicious-mode", choices=("random", "adversarial"), default="random",
                            help="uniform random actions, or ones minimizing the critic (default: random)")  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[MaliciousAgents]:
        return [cls(args.malicious, args.malicious_mode)] if args.malicious else []

    def check(self, context: Context) -> None:
        from agents.engine.config import ConfigError

        require_continuous_multi_agent(context, "--malicious")
        agents = context.run.agent.n_agents
        unknown = [i for i in self.indices if not 0 <= i < agents]
        if unknown:
            raise ConfigError(f"--malicious: unknown agent index {unknown}; this run has agents 0..{agents - 1}")
        if self.mode == "adversarial" and not isinstance(context.run.agent, TeamCritic):
            raise ConfigError(f"--malicious-mode adversarial needs a centralized critic; {context.run.config.algo} "
                              "has none")  # fmt: skip

    def run(self, context: Context) -> dict:
        clean = context.score()
        agent = MaliciousAgent(context.run.agent, sorted(set(self.indices)), self.mode, generator=_generator(context))
        stats = _paired(context, agent)
        print()
        print(table(f"malicious agents {sorted(set(self.indices))} ({self.mode}):", ["", "mean", "std", "min"],
                    [["clean", *cells(clean)], ["malicious", *cells(stats)]]))  # fmt: skip
        return {"agents": sorted(set(self.indices)), "mode": self.mode, "clean": clean, **stats,
                "delta": clean["mean_reward"] - stats["mean_reward"]}  # fmt: skip


class LipschitzMeter:
    """The empirical Lipschitz constant of each agent's actor on observations of clean rollouts."""

    key = "lipschitz"

    def __init__(self, radius: float, bank: int):
        self.radius, self.bank = radius, bank

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--lipschitz",
            action="store_true",
            help="measure each actor's Lipschitz constant on clean-rollout observations",
        )
        parser.add_argument(
            "--lipschitz-radius",
            type=float,
            default=0.05,
            metavar="R",
            help="radius of the PGD and random-direction ratios (default: 0.05)",
        )
        parser.add_argument("--lipschitz-bank", type=int, default=3000, metavar="ROWS",
                            help="at most this many observations per agent (default: 3000)")  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> list[LipschitzMeter]:
        return [cls(args.lipschitz_radius, args.lipschitz_bank)] if args.lipschitz else []

    def check(self, context: Context) -> None:
        from agents.engine.config import ConfigError

        require_continuous_multi_agent(context, "--lipschitz")
        if not self.radius > 0 or self.bank < 1:
            raise ConfigError("--lipschitz-radius must be > 0 and --lipschitz-bank at least 1")

    def run(self, context: Context) -> dict:
        from agents.robustness.lipschitz import jacobian_spectral_norm, pgd_ratio, random_direction_ratio

        recorder = RecordingAgent(context.run.agent)
        _paired(context, recorder)
        bank = torch.cat(recorder.seen)  # [steps * N, agents, D]
        generator = _generator(context)
        if bank.shape[0] > self.bank:
            keep = torch.randperm(bank.shape[0], generator=generator, device=bank.device)[: self.bank]
            bank = bank[keep]
        agent, agents = context.run.agent, bank.shape[1]
        values: dict[str, list[torch.Tensor]] = {"jacobian": [], "pgd": [], "random": []}
        for k in range(agents):

            def actor(o: torch.Tensor, k: int = k) -> torch.Tensor:  # agent k's actor on its own rows [B, D]
                return agent.policy(o.unsqueeze(1).expand(o.shape[0], agents, o.shape[1]))[:, k]

            rows = bank[:, k]
            values["jacobian"].append(jacobian_spectral_norm(actor, rows, method="autograd"))
            values["pgd"].append(pgd_ratio(actor, rows, self.radius, generator=generator))
            values["random"].append(random_direction_ratio(actor, rows, self.radius, generator=generator))
        report: dict[str, Any] = {"radius": self.radius, "observations_per_agent": int(bank.shape[0])}
        for name, per_agent in values.items():
            every = torch.cat(per_agent).double()
            report[f"{name}_mean"] = float(every.mean())
            report[f"{name}_p95"] = float(torch.quantile(every, 0.95))
            report[f"{name}_max"] = float(every.max())
            report[f"{name}_mean_per_agent"] = [float(v.double().mean()) for v in per_agent]
        names = ("jacobian", "pgd", "random")
        print()
        print(table(f"Lipschitz estimates ({report['observations_per_agent']} observations per agent, "
                    f"radius {self.radius}):", ["estimate", "mean", "p95", "max"],
                    [[n, *(f"{report[f'{n}_{s}']:.3f}" for s in ("mean", "p95", "max"))] for n in names]))  # fmt: skip
        return report
