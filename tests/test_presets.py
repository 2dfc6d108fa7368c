"""Every preset of ``train.py --list`` builds its env and agent and takes one update.

So a vocabulary change or a new preset cannot silently break one. Replay is tiny and one batch of the
preset's own size is drawn from it; the update is called at a late env step so that agents whose
updates start later (DQN's update_after_steps, an actor threshold) take their full update.
"""

import dataclasses
import math

import pytest
import torch

from agents import algorithm_module, all_presets
from agents.engine.buffers import TransitionBuffer
from agents.engine.collect import Collector
from agents.engine.config import validate
from agents.engine.episodes import EpisodeBuffer, EpisodeCollector
from agents.engine.loops import EpisodicConfig, OffPolicyConfig
from agents.engine.run import transition_fields
from envs import make_vec_env

PRESETS = all_presets()
LATE = 10**9


def finite_losses(metrics: dict[str, torch.Tensor]) -> None:
    losses = {k: float(v) for k, v in metrics.items() if "loss/" in k}
    assert losses, f"no loss in {sorted(metrics)}"
    assert all(math.isfinite(v) for v in losses.values()), losses


def one_off_policy_update(config) -> dict:
    module = algorithm_module(config.algo)
    env = make_vec_env(config.env.id, 1, seed=0, options=config.env.options, wrappers=config.env.wrappers)
    try:
        agent = module.build(config, env.obs_spec, env.action_spec, torch.device("cpu"))
        # a family with replay fields of its own (QCOMBO's per-light rewards from the info) provides them
        fields = getattr(module, "replay_fields", transition_fields)(env.obs_spec, env.action_spec)
        buffer = TransitionBuffer(fields, 8, seed=0)
        collector = Collector(env, agent, seed=0, info_fields=getattr(module, "INFO_FIELDS", ()))
        for step in range(3):
            buffer.extend(collector.step(step, random=step == 0))
        return agent.update(buffer.sample(config.train.batch_size), step=LATE)
    finally:
        env.close()


def one_episodic_update(config) -> dict:
    module = algorithm_module(config.algo)
    config = dataclasses.replace(  # one env, one evaluation episode: a VMAS preset steps 10 by default
        config,
        env=dataclasses.replace(config.env, num_envs=1),
        train=dataclasses.replace(config.train, eval_episodes=1),
    )
    env, _ = module.make_envs(config, "cpu")
    agent = module.build(config)
    # a family with its own episode fields (LM prompts) provides them; the default is the multi-agent layout
    layout = module.episode_layout(env) if hasattr(module, "episode_layout") else {}
    collector = EpisodeCollector(env, agent, seed=0, **layout)
    episodes, _ = collector.collect(step=0)
    buffer = EpisodeBuffer(collector.fields, 4, env.episode_limit + 1, seed=0)
    buffer.extend({name: value[:4] for name, value in episodes.items()})
    return agent.update(buffer.sample(min(config.train.batch_episodes, 4)), step=LATE)


def tiny_stand_in(config):
    """A preset on a packaged real LM (SmolLM2, 135M parameters) with the shipped tiny GPT-2 in its place.

    The default suite stays fast and needs no optional wheel: the same code path (one model as policy
    and task LM, the prefix cache, the real-tweet data) on a 4,096-token model; PIN's filter keeps its
    share of the vocabulary. ``tests/test_prompt_lm.py`` has the slow test with the real model.
    """
    from envs.lm import PACKAGED_MODELS

    if getattr(config.agent, "policy_lm", None) not in PACKAGED_MODELS:
        return config
    options = {**config.env.options, "task_lm": "regula-tiny-gpt2"}
    k = config.agent.filter_top_k
    agent = dataclasses.replace(
        config.agent, policy_lm="regula-tiny-gpt2", filter_top_k=None if k is None else round(k / 49_152 * 4_096)
    )
    return dataclasses.replace(config, agent=agent, env=dataclasses.replace(config.env, options=options))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_and_updates_once(name):
    config = PRESETS[name]
    validate(config)  # every preset's values are in range
    config = tiny_stand_in(config)
    if isinstance(config.train, EpisodicConfig):
        metrics = one_episodic_update(config)
    else:
        assert isinstance(config.train, OffPolicyConfig), type(config.train)
        metrics = one_off_policy_update(config)
    finite_losses(metrics)
