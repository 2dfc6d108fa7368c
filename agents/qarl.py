"""QARL: robust adversarial RL whose adversary follows a bounded-rationality curriculum; RARL and SAC as presets.

Paper: Reddi, Tölle, Peters, Chalvatzaki, D'Eramo, "Robust Adversarial Reinforcement Learning via
Bounded Rationality Curricula", ICLR 2024 (arXiv:2311.01642). RARL: Pinto, Davidson, Sukthankar,
Gupta, "Robust Adversarial Reinforcement Learning", ICML 2017 (arXiv:1703.02702). Notes, equations and
measurements: docs/algorithms/qarl.md.

Two independent SAC learners share one MuJoCo env: the protagonist P acts on the body, the adversary A
pushes chosen bodies with external forces (``envs.adversarial.AdversarialForce``). Each critic sees
``x = obs (+) alpha`` and its own action only. With alpha_i the temperature of the episode sample i
came from (drawn per episode by the Gamma teacher, ``agents.qarl_teacher``):

    P:  y = r + gamma (1 - d) [min_j Qbar_P,j(x', a') - beta log mu(a'|x')],      beta learned (SAC)
    A:  y = -r + gamma (1 - d) [min_j Qbar_A,j(x', f') - alpha_i log nu(f'|x')],  alpha_i per sample [B]

The adversary is the suite's SAC with ``temperature='per-sample'`` (it reads ``batch["temperature"]``),
never a subclass. Training alternates phases (``phase_loop``): an adversary phase (A learns, P acts
frozen) over the teacher's list of per-episode temperatures, then a protagonist phase replaying the
same list; each learner stores only its own phase's transitions and takes one gradient step per
``1 / updates_per_step`` env steps once its buffer holds ``update_after_transitions``. Every finished
episode gives the teacher a (alpha, discounted protagonist return) pair; the teacher moves only while
the mean return is above its floor. Deployment feeds alpha = 0.

Presets: ``qarl/<task>`` (method 'qarl'), ``rarl/<task>`` (the same loop, a plain auto-tuned SAC
adversary, no alpha input, no teacher) and ``sac-adv0/<task>`` (protagonist phases only, zero force,
half the env steps: the same protagonist sample budget).

Deviations from the reference: gymnasium v5 MuJoCo tasks instead of the two-player dm_control suite
(the DMC placements are in the table too); a phase lasts 5 episodes *and* at least
``phase_min_steps`` env steps (gymnasium episodes end early), extra episodes drawing fresh
temperatures; the teacher checks for an update after every episode with the newest <= 100 pairs;
2 x 128 networks on CPU (the authors use 3 x 256); the actor uses the suite's SAC (clamped log-std,
exact tanh correction) rather than the authors' separate mean / log-std MLPs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.core.buffers import TransitionBuffer
from agents.core.collect import Collector
from agents.core.config import AgentConfig, ConfigError, EnvConfig, RunConfig, doc
from agents.core.logger import MetricAccumulator
from agents.core.loops import Cadence, OffPolicyConfig, Session, UpdateCredit, report, train_learner
from agents.core.run import drive, make_evaluator, make_run_env, prepare_run_dir, seed_everything, transition_fields
from agents.qarl_teacher import GammaTeacher, TeacherConfig
from agents.sac import SAC, SACConfig
from envs.base import BoxSpec

METHODS = ("qarl", "rarl", "sac")
PLAYERS = ("adversary", "protagonist")


@dataclass(frozen=True)
class PhaseLoopConfig(OffPolicyConfig):
    """The alternating two-player loop: phases of whole episodes, one learner per phase."""

    warmup_steps: int = doc("must be 0: both players act with their policies from the first step", 0, ge=0, le=0)
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

    method: str = doc(
        "'qarl' (curriculum), 'rarl' (plain SAC adversary) or 'sac' (zero force)", "qarl", choices=METHODS
    )
    protagonist: SACConfig = doc("the protagonist's SAC settings", factory=SACConfig)
    adversary: SACConfig = doc("the adversary's SAC settings (QARL: temperature='per-sample')", factory=SACConfig)
    teacher: TeacherConfig = doc("the temperature curriculum (method 'qarl')", factory=TeacherConfig)
    force_limit: float | None = doc("adversary force per component, newtons (None: the task's default)", None, gt=0)
    force_bodies: list | None = doc("bodies the adversary pushes (None: the task's placement)", None)

    def check(self) -> None:
        per_sample = self.adversary.temperature == "per-sample"
        if self.method == "qarl" and not per_sample:
            raise ConfigError("agent.adversary.temperature must be 'per-sample' for method 'qarl'")
        if self.method != "qarl" and per_sample:
            raise ConfigError(f"agent.adversary.temperature='per-sample' needs method 'qarl', not {self.method!r}")
        bodies = self.force_bodies
        if bodies is not None and (not bodies or not all(isinstance(b, str) for b in bodies)):
            raise ConfigError(f"agent.force_bodies must be a non-empty list of body names, got {self.force_bodies!r}")


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
            if player == phases[0] and teacher is not None:
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
        state["discounted"] += state["discount"] * rows["reward"]
        state["discount"] *= gamma
        done = rows["terminated"] | rows["truncated"]
        if bool(done.any()):
            returns.append(state["discounted"][done].cpu())
            if teacher is not None and "temperature" in rows:
                result = teacher.update(rows["temperature"][done], state["discounted"][done])
                if result["updated"]:
                    session.logger.log(session.step, {f"teacher/{k}": v for k, v in result.items()})
            state["phase_episodes"] += int(done.sum())
            state["discounted"][done] = 0.0
            state["discount"][done] = 1.0
        if state["phase_steps"] >= cfg.phase_min_steps and state["phase_episodes"] >= cfg.phase_episodes:
            state.update(phase=state["phase"] + 1, fresh=True)

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


def run(config: RunConfig, run_dir: Path, *, resume: bool = False, logger_factory=None) -> Path:
    """Train (or resume) a QARL / RARL / SAC-vs-zero-force run in ``run_dir``."""
    from agents.core.logger import Logger

    cfg, agent = config.train, config.agent
    device = torch.device(cfg.device)
    wrapper = force_wrapper(config)
    protagonist_dim, adversary_dim = force_dims(config, wrapper)  # a bad body or force limit fails here
    checkpointer, checkpoint = prepare_run_dir(config, run_dir, resume=resume, device=device)
    seed_everything(cfg.seed)
    env = make_run_env(config, device, wrappers=(wrapper,))
    protagonist, adversary = build_players(config, env.obs_spec, protagonist_dim, adversary_dim, device)
    fields = transition_fields(env.obs_spec, BoxSpec((protagonist_dim,)))
    adversary_fields = transition_fields(env.obs_spec, BoxSpec((adversary_dim,)))
    if agent.method == "qarl":  # the episode's temperature: one more replay field
        adversary_fields["temperature"] = ((), torch.float32)
    capacity = min(cfg.buffer_size, max(cfg.total_steps, 1))
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed + 4_242)
    actor = JointActor(protagonist, "zero" if agent.method == "sac" else adversary, adversary_dim, generator)
    components = {
        "agent": protagonist,
        "adversary": adversary,
        "buffer": TransitionBuffer(fields, capacity, device=device, seed=cfg.seed),
        "adversary_buffer": TransitionBuffer(adversary_fields, capacity, device=device, seed=cfg.seed + 1),
        "collector": Collector(env, actor, seed=cfg.seed, info_fields=("temperature",) * (agent.method == "qarl")),
    }
    if agent.method == "qarl":
        components["teacher"] = GammaTeacher(agent.teacher)
    start = int(checkpoint["step"]) if checkpoint else 0
    make_logger = logger_factory or (lambda: Logger(run_dir, cfg.total_steps, start, progress=cfg.progress))
    session = Session(config, env, make_logger(), checkpointer, make_evaluator(config, device), components)
    phases = ("protagonist",) if agent.method == "sac" else PLAYERS
    drive(session, checkpoint, lambda s: phase_loop(s, phases, protagonist_dim, agent.protagonist.gamma))
    return Path(run_dir)


# ---- presets ---------------------------------------------------------------------------------------

# CPU-sized networks (the authors use 3 x 256; recorded as a deviation), the authors' learner values:
# actor lr 1e-4, critic and temperature lr 3e-4, initial temperature 0.005, actor from 5k transitions.
PLAYER = SACConfig(
    hidden=(128, 128), actor_lr=1e-4, initial_temperature=0.005, actor_update_after_steps=5_000, fused_adam=False
)


def preset(method: str, env_id: str, total_steps: int) -> RunConfig:
    """``method`` on ``env_id``: QARL / RARL / SAC with the same protagonist sample budget."""
    from envs.adversarial import FORCE_PLACEMENTS

    placement = FORCE_PLACEMENTS[env_id]
    adversary = dataclasses.replace(PLAYER, temperature="per-sample" if method == "qarl" else "learned")
    teacher = TeacherConfig(rate=1000.0 / placement.temperature_scale, threshold=placement.threshold)
    wrappers = [{"name": "temperature_observation", "alphas": [0.0]}] if method == "qarl" else []
    steps = total_steps if method != "sac" else total_steps // 2  # both phases vs the protagonist's only
    train = PhaseLoopConfig(
        total_steps=steps,
        buffer_size=1_000_000,
        batch_size=256,
        eval_every=10_000,
        eval_episodes=10,
        checkpoint_every=10_000,
    )
    agent = QARLConfig(method=method, protagonist=PLAYER, adversary=adversary, teacher=teacher)
    algo = "sac-adv0" if method == "sac" else method
    return RunConfig(algo, EnvConfig(id=env_id, wrappers=wrappers), train, agent)


# preset task -> (env id, env steps of QARL / RARL; SAC gets half: the same protagonist samples)
TASKS = {
    "inverted-pendulum": ("InvertedPendulum-v5", 60_000),
    "hopper": ("Hopper-v5", 300_000),
    "halfcheetah": ("HalfCheetah-v5", 300_000),
    "walker2d": ("Walker2d-v5", 300_000),
}
PRESETS: dict[str, RunConfig] = {}
for _task, (_env_id, _steps) in TASKS.items():
    PRESETS[f"qarl/{_task}"] = preset("qarl", _env_id, _steps)
    PRESETS[f"rarl/{_task}"] = preset("rarl", _env_id, _steps)
    PRESETS[f"sac-adv0/{_task}"] = preset("sac", _env_id, _steps)

__all__ = ["JointActor", "PhaseLoopConfig", "QARLConfig", "PRESETS", "build", "phase_loop", "run"]


# ---- robustness evaluation: a freshly trained worst-case adversary, a random-force adversary --------

# The fresh adversary: a plain auto-tuned SAC (the same networks as the players), one update per env
# step, learning from 1k transitions; its actor from 1k too (short budgets of 20k-50k steps).
FRESH_ADVERSARY = dataclasses.replace(PLAYER, actor_update_after_steps=1_000)


class _ProgressOnly:
    """The logger of an evaluation-time training: a progress bar, nothing written."""

    def __init__(self, total: int, progress: bool, label: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="step", desc=label, disable=not progress, mininterval=1.0, leave=False)

    def log(self, step: int, metrics: dict) -> dict[str, float]:
        self.bar.n = step
        self.bar.refresh()
        return {k: float(v) for k, v in metrics.items()}

    def histogram(self, *args: Any) -> None:
        pass

    def message(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


class _NoCheckpoints:
    def save(self, step: int, payload: dict) -> None:
        pass


def adversary_env(config: RunConfig, wrapper: dict, num_envs: int, seed: int, device):
    """The run's deployment env with the adversary's force added (the protagonist sees what it saw)."""
    from envs import make_vec_env

    return make_vec_env(
        config.env.id,
        num_envs,
        device=device,
        seed=seed,
        options=config.env.options,
        wrappers=[wrapper, *config.env.wrappers],
    )


def train_fresh_adversary(
    run: Any, *, steps: int, seed: int, force_limit: float | None = None, explore: bool = False, progress: bool = True
) -> SAC:
    """A new SAC adversary trained for ``steps`` env steps against the frozen protagonist of ``run``.

    Works for any single-agent MuJoCo run (SAC included, so every method meets the same test): the
    protagonist acts as it is evaluated (``explore``) and is never updated (only adversary phases run).
    """
    config, device = run.config, torch.device(run.device)
    wrapper = force_wrapper(config, force_limit)
    protagonist_dim, adversary_dim = force_dims(config, wrapper)
    env = adversary_env(config, wrapper, 1, seed, device)
    with torch.random.fork_rng(devices=[]):  # the adversary's own seed; the caller's RNG is left alone
        torch.manual_seed(seed)
        adversary = SAC(env.obs_spec, BoxSpec((adversary_dim,)), FRESH_ADVERSARY, device)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        actor = JointActor(run.agent, adversary, adversary_dim, generator)
        actor.protagonist_explore = explore
        fields = transition_fields(env.obs_spec, BoxSpec((adversary_dim,)))
        train = PhaseLoopConfig(
            total_steps=steps,
            updates_per_step=1.0,
            phase_episodes=1,
            phase_min_steps=steps,
            update_after_transitions=1_000,
            eval_every=0,
            checkpoint_every=0,
            log_every=max(steps // 100, 1),
            seed=seed,
        )
        session = Session(
            dataclasses.replace(config, train=train),
            env,
            _ProgressOnly(steps, progress, "fresh adversary"),
            _NoCheckpoints(),
            lambda agent, step: {},
            {
                "agent": run.agent,
                "adversary": adversary,
                "buffer": TransitionBuffer(fields, 8, device=device),  # the protagonist never learns here
                "adversary_buffer": TransitionBuffer(fields, max(steps, 1), device=device, seed=seed),
                "collector": Collector(env, actor, seed=seed),
            },
        )
        try:
            phase_loop(session, ("adversary",), protagonist_dim, FRESH_ADVERSARY.gamma)
        finally:
            session.logger.close()
            env.close()
    return adversary


def score_against(
    run: Any, adversary: Any, *, episodes: int, seed: int, explore: bool, force_limit=None, gamma: float | None = None
) -> dict:
    """Episodes of the protagonist against ``adversary`` (a SAC, 'random' or 'zero'), in the suite's schema
    (with the mean discounted return given ``gamma``)."""
    from agents.core.evaluation import run_episodes, summarize

    config, device = run.config, torch.device(run.device)
    wrapper = force_wrapper(config, force_limit)
    _, adversary_dim = force_dims(config, wrapper)
    env = adversary_env(config, wrapper, min(episodes, 10), seed, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed + 1)
    actor = JointActor(run.agent, adversary, adversary_dim, generator)
    actor.protagonist_explore = explore
    try:
        # the adversary plays its mean action
        result = run_episodes(actor, env, episodes, explore=False, step=run.step, seed=seed, gamma=gamma)
    finally:
        env.close()
    scores = summarize(result["returns"], result["lengths"], result.get("discounted_returns"))
    return {**scores, "force_limit": wrapper.get("force_limit")}


class AdversaryConditions:
    """``evaluate.py --adversary``: a freshly trained worst-case adversary against the frozen protagonist
    (its own budget and seed); ``--random-force``: uniformly random forces at the same limit."""

    key = "adversary"

    def __init__(self, fresh: bool, random: bool, steps: int, seed: int, force_limit: float | None):
        self.fresh, self.random, self.steps, self.seed, self.force_limit = fresh, random, steps, seed, force_limit

    @staticmethod
    def add_arguments(parser) -> None:
        parser.add_argument("--adversary", action="store_true", help="train a fresh worst-case force adversary")
        parser.add_argument("--random-force", action="store_true", help="uniformly random forces at the limit")
        parser.add_argument("--adversary-steps", type=int, default=20_000, help="fresh adversary's env steps")
        parser.add_argument("--adversary-seed", type=int, default=777, help="fresh adversary's seed (default 777)")
        parser.add_argument("--force-limit", type=float, help="force per component, N (default: the run's or task's)")

    @classmethod
    def from_args(cls, args) -> list[AdversaryConditions]:
        if not (args.adversary or args.random_force):
            return []
        return [cls(args.adversary, args.random_force, args.adversary_steps, args.adversary_seed, args.force_limit)]

    def check(self, context) -> None:
        from envs import EnvError

        if context.multi_agent:
            raise EnvError("--adversary / --random-force need a single-agent MuJoCo run")
        if self.steps < 1:
            raise ConfigError(f"--adversary-steps must be >= 1, got {self.steps}")
        if self.force_limit is not None and not self.force_limit > 0:
            raise ConfigError(f"--force-limit must be > 0, got {self.force_limit}")
        try:
            force_dims(context.run.config, force_wrapper(context.run.config, self.force_limit))
        except ValueError as e:  # not a MuJoCo env, no placement for the task, unknown body
            raise EnvError(f"--adversary on {context.run.config.env.id}: {str(e).splitlines()[0]}") from None

    def run(self, context) -> dict:
        from agents.core.conditions import cells, table

        out, rows = {}, []
        common = dict(
            episodes=context.episodes,
            seed=context.seed,
            explore=context.explore,
            force_limit=self.force_limit,
            gamma=context.gamma,  # the discounted return too: what the adversary minimizes
        )
        row = lambda name, stats: [name, *cells(stats), f"{stats.get('mean_discounted_reward', float('nan')):.1f}"]  # noqa: E731
        if self.random:
            out["random_force"] = score_against(context.run, "random", **common)
            rows.append(row("random force", out["random_force"]))
        if self.fresh:
            adversary = train_fresh_adversary(
                context.run, steps=self.steps, seed=self.seed, force_limit=self.force_limit, explore=context.explore
            )
            out["fresh"] = {**score_against(context.run, adversary, **common), "steps": self.steps, "seed": self.seed}
            rows.append(row(f"fresh adversary ({self.steps:,} steps)", out["fresh"]))
        print()
        print(table("against force adversaries:", ["adversary", "mean", "std", "min", "discounted"], rows))
        return out
