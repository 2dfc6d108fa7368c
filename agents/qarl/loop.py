"""QARL's two-player phase loop: both SAC learners, the joint actor, the session and its loop.

See :mod:`agents.qarl` for the algorithm, its paper and its deviations from the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from agents.engine.collect import Collector
from agents.engine.config import AgentConfig, ConfigError, RunConfig, doc
from agents.engine.logger import MetricAccumulator
from agents.engine.loops import Cadence, OffPolicyConfig, Session, UpdateCredit, report, train_learner
from agents.engine.run import make_evaluator, make_run_env, make_transition_buffer, transition_fields
from agents.qarl.gamma import discounted_returns
from agents.qarl.teacher import GammaTeacher, TeacherConfig
from agents.sac import SAC, SACConfig
from envs.base import BoxSpec

METHODS = ("qarl", "rarl", "sac")
PLAYERS = ("adversary", "protagonist")


@dataclass(frozen=True)
class PhaseLoopConfig(OffPolicyConfig):
    """The alternating two-player loop: phases of whole episodes, one learner per phase."""

    update_after_steps: int = doc(
        "must be 0: both players act with their policies from the first step (updates start after "
        "update_after_transitions of each learner's own buffer)",
        0,
        ge=0,
        le=0,
    )
    updates_per_step: float = doc("gradient steps of the phase's learner per env step (QARL: 1/3)", 1 / 3, gt=0)
    phase_episodes: int = doc("episodes per phase: the length of the teacher's temperature list", 5, ge=1)
    phase_min_steps: int = doc("a phase also lasts at least this many env steps", 2_500, ge=1)
    update_after_transitions: int = doc(
        "a learner's first gradient step once its own buffer holds more than this many transitions", 3_000, ge=0
    )

    def check(self) -> None:
        if self.prioritized is not None:  # refused, not silently ignored: the phase buffers sample uniformly
            raise ConfigError("train.prioritized is not supported by the two-player phase loop; leave it null")


@dataclass(frozen=True)
class QARLConfig(AgentConfig):
    """Both players, the teacher and the adversary's force (QARL, RARL or the SAC baseline)."""

    protagonist: SACConfig = doc("the protagonist's SAC settings", factory=SACConfig)
    adversary: SACConfig = doc("the adversary's SAC settings (QARL: temperature='per-sample')", factory=SACConfig)
    teacher: TeacherConfig = doc("the temperature curriculum (method 'qarl')", factory=TeacherConfig)
    force_limit: float | None = doc("adversary force per component, newtons (None: the task's default)", None, gt=0)
    force_bodies: list | None = doc("bodies the adversary pushes (None: the task's placement)", None)

    # The method is the algorithm's name (config.algo), never a second setting: see method_of.
    RETIRED = {"method": "the algorithm name decides (presets qarl/<task>, rarl/<task>, sac-adv0/<task>)"}

    def check(self) -> None:
        bodies = self.force_bodies
        if bodies is not None and (not bodies or not all(isinstance(b, str) for b in bodies)):
            raise ConfigError(f"agent.force_bodies must be a non-empty list of body names, got {self.force_bodies!r}")


# algorithm name -> the method it runs: 'qarl' (curriculum), 'rarl' (plain SAC adversary), 'sac' (zero force)
METHOD_OF = {"qarl": "qarl", "rarl": "rarl", "sac-adv0": "sac"}


# Teacher variants the phase loop refuses (the teacher implements them; the loop does not act on them).
UNWIRED_VARIANTS = {
    "homogeneous": "an ablation, not QARL (the protagonist would take each episode's alpha as its temperature)",
    "force": "a baseline, not QARL (it needs a plain SAC adversary and a per-episode force limit)",
}


def method_of(config: RunConfig) -> str:
    """The method a QARL-family run runs, from its algorithm name."""
    return METHOD_OF[config.algo]


def check(config: RunConfig) -> None:
    """Rules across sections (the runner calls it before building): QARL's adversary, and only QARL's,
    reads the per-sample temperature of its batch."""
    per_sample = config.agent.adversary.temperature == "per-sample"
    if method_of(config) == "qarl" and not per_sample:
        raise ConfigError("agent.adversary.temperature must be 'per-sample' for qarl")
    if method_of(config) != "qarl" and per_sample:
        raise ConfigError(f"agent.adversary.temperature='per-sample' needs qarl, not {config.algo}")
    variant = config.agent.teacher.variant
    if method_of(config) == "qarl" and variant in UNWIRED_VARIANTS:
        why = UNWIRED_VARIANTS[variant]
        raise ConfigError(f"agent.teacher.variant={variant!r} is not run by the phase loop: {why}")


def force_wrapper(config: RunConfig, force_limit: float | None = None) -> dict[str, Any]:
    """The ``adversarial_force`` wrapper entry of a run (its task's placement unless overridden)."""
    agent = config.agent if isinstance(config.agent, QARLConfig) else None
    wrapper: dict[str, Any] = {"name": "adversarial_force"}
    limit = force_limit if force_limit is not None else (agent.force_limit if agent else None)
    if limit is not None:
        wrapper["force_limit"] = float(limit)
    if agent is not None and agent.force_bodies is not None:
        wrapper["bodies"] = list(agent.force_bodies)
    return wrapper


def force_dims(config: RunConfig, wrapper: dict[str, Any]) -> tuple[int, int]:
    """(protagonist action dim, adversary force dim); builds one env, so a bad body or limit fails here."""
    from envs import make_env
    from envs.adversarial import AdversarialForce

    env = make_env(config.env.id, config.env.options)
    try:
        wrapped = AdversarialForce(env, **{k: v for k, v in wrapper.items() if k != "name"})
        return wrapped.protagonist_dim, wrapped.adversary_dim
    finally:
        env.close()


class JointActor:
    """Both players in one env step: ``[protagonist action, adversary force]``, canonical [-1, 1].

    ``adversary`` is a learner, or the strings ``'zero'`` (no force) or ``'random'`` (uniform forces).
    """

    def __init__(self, protagonist: Any, adversary: Any, adversary_dim: int, generator: torch.Generator):
        self.protagonist, self.adversary = protagonist, adversary
        self.adversary_dim, self.generator = adversary_dim, generator
        self.device = protagonist.device
        self.protagonist_explore: bool | None = None  # None: as the caller asks; a bool pins it

    def initial_state(self, num_envs: int) -> None:
        return None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = True):
        pinned = self.protagonist_explore
        action = self.protagonist.act(obs, step=step, explore=explore if pinned is None else pinned)[0]
        n = obs.shape[0]
        if self.adversary == "zero":
            force = torch.zeros(n, self.adversary_dim, device=obs.device)
        elif self.adversary == "random":
            force = torch.rand(n, self.adversary_dim, generator=self.generator, device=obs.device) * 2 - 1
        else:
            force = self.adversary.act(obs, step=step, explore=explore)[0]
        return torch.cat([action, force], -1), state


def player_rows(rows: dict[str, torch.Tensor], player: str, protagonist_dim: int) -> dict[str, torch.Tensor]:
    """The transition of one player: its own action part, and the adversary's reward -r."""
    own = rows["action"][:, :protagonist_dim] if player == "protagonist" else rows["action"][:, protagonist_dim:]
    reward = rows["reward"] if player == "protagonist" else -rows["reward"]
    return {**rows, "action": own, "reward": reward}


def phase_loop(session: Session, phases: tuple[str, ...], protagonist_dim: int, gamma: float) -> None:
    """Alternate ``phases`` (learner names) until ``total_steps``; see the module docstring.

    Components: ``agent`` (protagonist), ``adversary``, ``buffer``, ``adversary_buffer``, ``collector``
    and optionally ``teacher``. Everything needed to resume mid-phase is in ``session.extra_state``.
    """
    cfg: PhaseLoopConfig = session.config.train
    parts = session.components
    env, collector, teacher = session.env, parts["collector"], parts.get("teacher")
    learners = {
        "protagonist": (parts["agent"], parts["buffer"], ""),
        "adversary": (parts["adversary"], parts["adversary_buffer"], "adversary/"),
    }
    n = env.num_envs
    extra = session.extra_state or {}
    state = {
        "phase": 0, "phase_steps": 0, "phase_episodes": 0, "fresh": True,
        "credit": 0.0, "seen": {"protagonist": 0, "adversary": 0},
        "alphas": torch.zeros(0), "teacher_generator": None,
        "pair_alphas": torch.zeros(0), "pair_returns": torch.zeros(0),
        "discounted": torch.zeros(n, device=env.device), "discount": torch.ones(n, device=env.device),
        **extra,
    }  # fmt: skip
    generator = torch.Generator()
    generator.manual_seed(cfg.seed + 31_337)
    if state["teacher_generator"] is not None:
        generator.set_state(state["teacher_generator"])
    if hasattr(env, "sampler") and teacher is not None:
        env.sampler = lambda count: teacher.sample(count, generator)
    credit = UpdateCredit(cfg.updates_per_step, state["credit"])
    cadence = Cadence.of(cfg, session.step)
    metrics = MetricAccumulator()
    returns: list[torch.Tensor] = []

    def extra_state() -> dict[str, Any]:
        return {**state, "credit": credit.credit, "teacher_generator": generator.get_state()}

    while session.step < cfg.total_steps:
        player = phases[state["phase"] % len(phases)]
        learner, buffer, prefix = learners[player]
        if state["fresh"]:  # a phase starts: its temperature list, new episodes
            if player == phases[0] and teacher is not None:  # an iteration starts
                teacher.set_progress(session.step / cfg.total_steps)  # the linear variant's schedule
                state["alphas"] = teacher.sample(cfg.phase_episodes, generator)
                session.logger.histogram("teacher/alpha", state["alphas"], session.step)
            if hasattr(env, "set_alphas") and state["alphas"].numel():
                env.set_alphas(state["alphas"])
            collector.restart()
            state["discounted"].zero_(), state["discount"].fill_(1.0)
            state.update(fresh=False, phase_steps=0, phase_episodes=0)
        rows = collector.step(session.step)
        buffer.extend(player_rows(rows, player, protagonist_dim))
        session.step += n
        state["phase_steps"] += n
        state["seen"][player] += n
        updates = credit.take(n)
        if len(buffer) > cfg.update_after_transitions:
            train_learner(learner, buffer, updates, cfg.batch_size, state["seen"][player], metrics, prefix)
        done = rows["terminated"] | rows["truncated"]
        carry = (state["discounted"], state["discount"])
        so_far, (state["discounted"], state["discount"]) = discounted_returns(
            rows["reward"][None], done[None], gamma, carry
        )
        if bool(done.any()):
            finished = so_far[0][done]  # J of each episode that ended: the teacher's pair
            returns.append(finished.cpu())
            if teacher is not None and "temperature" in rows:  # kept until the iteration ends
                state["pair_alphas"] = torch.cat([state["pair_alphas"], rows["temperature"][done].cpu().float()])
                state["pair_returns"] = torch.cat([state["pair_returns"], finished.cpu().float()])
            state["phase_episodes"] += int(done.sum())
        if state["phase_steps"] >= cfg.phase_min_steps and state["phase_episodes"] >= cfg.phase_episodes:
            state.update(phase=state["phase"] + 1, fresh=True)
            if teacher is not None and state["phase"] % len(phases) == 0:  # an iteration ends
                # The teacher sees pairs only here: every pair it holds was drawn under its current
                # distribution, so the importance weights of the next update are the right ones.
                result = teacher.update(state["pair_alphas"], state["pair_returns"])
                state.update(pair_alphas=torch.zeros(0), pair_returns=torch.zeros(0))
                if result["updated"]:
                    session.logger.log(session.step, {f"teacher/{k}": v for k, v in result.items()})

        def log_values(player: str = player) -> dict[str, Any]:
            values = {**metrics.means(), **collector.stats.summary(), "train/phase": float(player == "adversary")}
            if returns:
                values["rollout/discounted_return"] = torch.cat(returns).mean()
                returns.clear()
            if teacher is not None:
                values.update({"teacher/mean_alpha": teacher.mean_alpha, "teacher/shape": teacher.shape})
            return values

        report(session, cadence, log_values, extra_state)


def build_players(config: RunConfig, obs_spec: BoxSpec, protagonist_dim: int, adversary_dim: int, device):
    """(protagonist, adversary) SAC learners on ``obs_spec`` (the run's seed set by the caller)."""
    agent: QARLConfig = config.agent
    protagonist = SAC(obs_spec, BoxSpec((protagonist_dim,)), agent.protagonist, device)
    adversary = SAC(obs_spec, BoxSpec((adversary_dim,)), agent.adversary, device)
    return protagonist, adversary


def build(config: RunConfig, obs_spec, action_spec, device) -> SAC:
    """The deployed policy: the protagonist, on the deployment env's specs (what load_run restores)."""
    return SAC(obs_spec, action_spec, config.agent.protagonist, device)


def build_session(config: RunConfig, device) -> Session:
    """The two-player session: the env with the adversary's force, both SAC learners with their own
    buffers, the joint collector and (method 'qarl') the Gamma teacher."""
    cfg, method = config.train, method_of(config)
    wrapper = force_wrapper(config)
    protagonist_dim, adversary_dim = force_dims(config, wrapper)  # a bad body or force limit fails here
    env = make_run_env(config, device, wrappers=(wrapper,))
    protagonist, adversary = build_players(config, env.obs_spec, protagonist_dim, adversary_dim, device)
    fields = transition_fields(env.obs_spec, BoxSpec((protagonist_dim,)))
    adversary_fields = transition_fields(env.obs_spec, BoxSpec((adversary_dim,)))
    if method == "qarl":  # the episode's temperature: one more replay field
        adversary_fields["temperature"] = ((), torch.float32)
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed + 4_242)
    actor = JointActor(protagonist, "zero" if method == "sac" else adversary, adversary_dim, generator)
    components = {
        "agent": protagonist,
        "adversary": adversary,
        "buffer": make_transition_buffer(cfg, fields, device),
        "adversary_buffer": make_transition_buffer(cfg, adversary_fields, device, seed_offset=1),
        "collector": Collector(env, actor, seed=cfg.seed, info_fields=("temperature",) * (method == "qarl")),
    }
    if method == "qarl":
        components["teacher"] = GammaTeacher(config.agent.teacher)
    return Session(config, env, None, None, make_evaluator(config, device), components)


def loop(session: Session) -> None:
    """The run's phases: adversary and protagonist alternating (QARL, RARL), protagonist only (SAC)."""
    phases = ("protagonist",) if method_of(session.config) == "sac" else PLAYERS
    protagonist_dim = session.env.action_spec.shape[0] - session.collector.agent.adversary_dim
    phase_loop(session, phases, protagonist_dim, session.config.agent.protagonist.gamma)
