"""Learners for the traffic-signal env (``traffic:grid``, :mod:`envs.traffic`): QCOMBO and ERNIE-QCOMBO.

Modules: ``qcombo_losses`` (QCOMBO's three losses as pure functions), ``qcombo`` (the learner and its config),
``presets`` (the 2 x 2 grid runs), ``conditions`` (``evaluate.py --traffic``: demand, car speed, malicious
lights, observation noise, another grid size).

Family contract (:mod:`agents.engine.family`): the engine's off-policy loop on the engine's transition replay and
collector; the only addition is the per-light reward, which the collector copies from ``info["agent_reward"]``
into a replay field (QCOMBO's local TD loss needs it, the global one the env's global reward). The global state
is read from the observations (:func:`agents.traffic.qcombo.global_state`), so nothing else is stored.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.engine.collect import Collector
from agents.engine.family import Family
from agents.engine.loops import Session
from agents.engine.run import make_evaluator, make_run_env, make_transition_buffer, transition_fields
from agents.traffic.conditions import TrafficConditions
from agents.traffic.presets import PRESETS
from agents.traffic.qcombo import Qcombo, QcomboConfig

INFO_FIELDS = ("agent_reward",)  # the per-light rewards [N, lights], one more replay field


def replay_fields(obs_spec: Any, action_spec: Any) -> dict:
    """The engine's transition fields plus the per-light rewards ``agent_reward [lights]``."""
    return {**transition_fields(obs_spec, action_spec), "agent_reward": ((obs_spec.shape[0],), torch.float32)}


def build(config: Any, obs_spec: Any, action_spec: Any, device: Any) -> Qcombo:
    """The learner of ``config`` for the env's specs (obs ``[lights, 18 + lights]``, binary actions ``[lights]``)."""
    return Qcombo(obs_spec, action_spec, config.agent, device=device, seed=config.train.seed)


def build_session(config: Any, device: Any) -> Session:
    """The engine's off-policy session with the per-light reward in the replay."""
    env = make_run_env(config, device)
    agent = build(config, env.obs_spec, env.action_spec, device)
    buffer = make_transition_buffer(config.train, replay_fields(env.obs_spec, env.action_spec), device)
    collector = Collector(env, agent, seed=config.train.seed, info_fields=INFO_FIELDS)
    components = {"agent": agent, "buffer": buffer, "collector": collector}
    return Session(config, env, None, None, make_evaluator(config, device), components)


FAMILY = Family(
    presets=PRESETS,
    build_agent=build,
    build_session=build_session,
    conditions=(TrafficConditions,),
    multi_agent=True,
)

__all__ = ["FAMILY", "INFO_FIELDS", "PRESETS", "Qcombo", "QcomboConfig", "build", "build_session", "replay_fields"]
