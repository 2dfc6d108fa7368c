"""QARL: robust adversarial RL whose adversary follows a bounded-rationality curriculum; RARL and SAC as presets.

Paper: Reddi, Tölle, Peters, Chalvatzaki, D'Eramo, "Robust Adversarial Reinforcement Learning via
Bounded Rationality Curricula", ICLR 2024 (arXiv:2311.01642). RARL: Pinto, Davidson, Sukthankar,
Gupta, "Robust Adversarial Reinforcement Learning", ICML 2017 (arXiv:1703.02702). Notes, equations and
measurements: docs/algorithms/qarl.md.

Two independent SAC learners share one MuJoCo env: the protagonist P acts on the body, the adversary A
pushes chosen bodies with external forces (``envs.adversarial.AdversarialForce``). Each critic sees
``x = obs (+) alpha`` and its own action only. With alpha_i the temperature of the episode sample i
came from (drawn per episode by the Gamma teacher, ``agents.qarl.teacher``):

    P:  y = r + gamma (1 - d) [min_j Qbar_P,j(x', a') - beta log mu(a'|x')],      beta learned (SAC)
    A:  y = -r + gamma (1 - d) [min_j Qbar_A,j(x', f') - alpha_i log nu(f'|x')],  alpha_i per sample [B]

The adversary is the suite's SAC with ``temperature='per-sample'`` (it reads ``batch["temperature"]``),
never a subclass. Training alternates phases (``phase_loop``): an adversary phase (A learns, P acts
frozen) over the teacher's list of per-episode temperatures, then a protagonist phase replaying the
same list; each learner stores only its own phase's transitions and takes one gradient step per
``1 / updates_per_step`` env steps once its buffer holds ``update_after_transitions``. Every finished
episode makes an (alpha, discounted protagonist return) pair; the teacher gets an iteration's pairs
when the iteration ends (so every pair it holds was drawn under its current distribution) and moves
only while their mean return is above its floor. Deployment feeds alpha = 0.

Presets: ``qarl/<task>`` (method 'qarl'), ``rarl/<task>`` (the same loop, a plain auto-tuned SAC
adversary, no alpha input, no teacher) and ``sac-adv0/<task>`` (protagonist phases only, zero force,
half the env steps: the same protagonist sample budget), with the suite's SAC at one update per env
step; ``qarl-authors/<task>``, ``rarl-authors/<task>``, ``sac-adv0-authors/<task>`` keep the authors'
learner values and one update per 3 env steps (see :mod:`agents.qarl.presets`).

Deviations from the reference: gymnasium v5 MuJoCo tasks instead of the two-player dm_control suite
(the DMC placements are in the table too); a phase lasts 5 episodes *and* at least
``phase_min_steps`` env steps (gymnasium episodes end early), extra episodes drawing fresh
temperatures; the teacher checks for an update after every iteration with the newest <= 100 pairs;
2 x 128 networks on CPU (the authors use 3 x 256); the actor uses the suite's SAC (clamped log-std,
exact tanh correction) rather than the authors' separate mean / log-std MLPs; within a gradient step
the critic is updated before the actor (the reference: actor first); the actor threshold is inclusive
(``step >= actor_update_after_steps``); progress evaluations feed alpha = 0 (the reference: the
curriculum's mean).
"""

from agents.engine.family import Family
from agents.qarl.conditions import AdversaryConditions, score_against, train_fresh_adversary
from agents.qarl.loop import (
    METHOD_OF,
    METHODS,
    PLAYERS,
    JointActor,
    PhaseLoopConfig,
    QARLConfig,
    build,
    build_players,
    build_session,
    check,
    force_dims,
    force_wrapper,
    loop,
    method_of,
    phase_loop,
    player_rows,
)
from agents.qarl.presets import PLAYER, PRESETS, SUITE_PLAYER, SUITE_TASKS, TASKS, preset

FAMILY = Family(
    presets=PRESETS,
    build_agent=build,
    build_session=build_session,
    loop=loop,
    conditions=(AdversaryConditions,),
    check=check,
)

__all__ = [
    "FAMILY",
    "METHOD_OF",
    "METHODS",
    "PLAYER",
    "PLAYERS",
    "PRESETS",
    "SUITE_PLAYER",
    "SUITE_TASKS",
    "TASKS",
    "AdversaryConditions",
    "JointActor",
    "PhaseLoopConfig",
    "QARLConfig",
    "build",
    "build_players",
    "build_session",
    "check",
    "force_dims",
    "force_wrapper",
    "loop",
    "method_of",
    "phase_loop",
    "player_rows",
    "preset",
    "score_against",
    "train_fresh_adversary",
]
