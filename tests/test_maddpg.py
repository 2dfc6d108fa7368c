"""MADDPG and ERNIE (agents/maddpg/): weight 0 is MADDPG bit for bit, the critic target by hand, gradient isolation
per loss and per agent, save -> load -> act, per-agent replay rows and episode statistics, and bad input."""

import dataclasses
import io

import pytest
import torch

import agents.maddpg.learner as agents_maddpg
from agents import all_presets, get_preset
from agents.engine.buffers import TransitionBuffer
from agents.engine.collect import EpisodeStats, multi_agent_box
from agents.engine.config import ConfigError, apply_overrides
from agents.engine.run import transition_fields
from agents.maddpg import MADDPG, MADDPGConfig, _clip_per_member, build
from envs import make_vec_env
from envs.base import BoxSpec, DiscreteSpec

AGENTS, OBS, ACT = 3, 4, 2
OBS_SPEC, ACTION_SPEC = BoxSpec((AGENTS, OBS)), BoxSpec((AGENTS, ACT))
TINY = MADDPGConfig(hidden=(8, 8))


def make(config=TINY, seed=0, agents=AGENTS):
    torch.manual_seed(seed)
    return MADDPG(BoxSpec((agents, OBS)), BoxSpec((agents, ACT)), config)


def batch(rows=16, seed=1, agents=AGENTS, team=False):
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(rows, agents, OBS, generator=g),
        "action": torch.rand(rows, agents, ACT, generator=g) * 2 - 1,
        "reward": torch.randn((rows,) if team else (rows, agents), generator=g),
        "next_obs": torch.randn(rows, agents, OBS, generator=g),
        "terminated": torch.rand(rows, generator=g) < 0.3,
    }


def params(agent):
    return [p.detach().clone() for net in (agent.actor, agent.critic, agent.actor_target, agent.critic_target)
            for p in net.parameters()]  # fmt: skip


def train(agent, updates=4, seed=0):
    torch.manual_seed(seed)
    for i in range(updates):
        agent.update(batch(seed=10 + i), step=i)


def test_weight_zero_is_maddpg_bit_for_bit_and_draws_no_random_numbers():
    base = make(dataclasses.replace(TINY, ernie_weight=0.0, ernie_a_weight=0.0))
    train(base)
    base_rng = torch.get_rng_state()
    # every other ERNIE option set, weights 0: nothing of ERNIE may run
    off = dataclasses.replace(TINY, ernie_weight=0.0, ernie_form="plain", ernie_radius=2.0, ernie_steps=5,
                              ernie_baseline_gaussian=True, ernie_a_weight=0.0, ernie_a_budget=2)  # fmt: skip
    variant = make(off)
    train(variant)
    assert all(torch.equal(a, b) for a, b in zip(params(base), params(variant)))
    assert torch.equal(base_rng, torch.get_rng_state())
    # the test can fail: a positive weight changes the actors
    ernie = make(dataclasses.replace(TINY, ernie_weight=1.0))
    train(ernie)
    assert not all(torch.equal(a, b) for a, b in zip(params(base), params(ernie)))


def test_presets_maddpg_is_ernie_at_weight_zero():
    presets = all_presets()
    for task in ("simple-spread", "vmas-navigation", "simple-tag", "speaker-listener"):
        maddpg, ernie, ernie_02 = (presets[f"{arm}/{task}"] for arm in ("maddpg", "ernie", "ernie-0.2"))
        assert maddpg.agent.ernie_weight == 0 and ernie.agent.ernie_weight == 1 and ernie_02.agent.ernie_weight == 0.2
        assert dataclasses.replace(ernie.agent, ernie_weight=0.0) == maddpg.agent
        assert ernie.env == maddpg.env and ernie.train == maddpg.train
        assert maddpg.env.options["actions"] == "continuous" and maddpg.env.options["reward"] == "agent"
    spread = presets["ernie/simple-spread"]
    assert (spread.agent.ernie_radius, spread.agent.ernie_steps, spread.agent.ernie_form) == (0.3, 3, "stackelberg")
    assert (spread.train.batch_size, spread.train.updates_per_step, spread.agent.gamma) == (1024, 0.04, 0.95)


def _forward(layers, x):
    """An independent forward of member k's MLP: x @ W + b with ReLU between layers (weights ``[in, out]``)."""
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i + 1 < len(layers):
            x = x.clamp(min=0)
    return x


def _member(net, k):
    return [(layer.weight[k].detach(), layer.bias[k, 0].detach()) for layer in net.layers]


@pytest.mark.parametrize("team", [False, True])
def test_critic_target_by_hand_on_three_rows(team):
    agents = 2
    agent = make(dataclasses.replace(TINY, gamma=0.9), agents=agents)
    data = batch(rows=3, agents=agents, team=team)
    data["terminated"] = torch.tensor([False, True, False])
    expected = torch.zeros(agents, 3)
    for b in range(3):
        next_obs = data["next_obs"][b]  # [n, D]
        next_actions = torch.stack([torch.tanh(_forward(_member(agent.actor_target, j), next_obs[j]))
                                    for j in range(agents)])  # fmt: skip
        critic_in = torch.cat([next_obs.reshape(-1), next_actions.reshape(-1)])
        for k in range(agents):
            q_next = _forward(_member(agent.critic_target, k), critic_in)[0]
            reward = data["reward"][b] if team else data["reward"][b, k]
            done = float(data["terminated"][b])
            expected[k, b] = reward + 0.9 * (1 - done) * q_next
    torch.testing.assert_close(agent.critic_target_value(data), expected, rtol=1e-5, atol=1e-6)


def test_each_loss_sends_gradient_only_to_its_own_parameters():
    agent = make(dataclasses.replace(TINY, ernie_weight=1.0))
    data = batch()
    critic_loss, _ = agent.critic_loss(data)
    grads = torch.autograd.grad(critic_loss, agent.actor_params, allow_unused=True)
    assert all(g is None for g in grads)  # the target actions come from the target actors, under no_grad
    actor_loss, metrics = agent.actor_loss(data)
    agent._step(actor_loss, agent.actor_optimizer, agent.actor_params, 0.0)
    assert all(p.grad is None for p in agent.critic_params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor_params)
    assert metrics["train/ernie_penalty"] > 0


def test_actor_k_learns_only_from_critic_k():
    """With critic 1's output layer zeroed (Q_1 constant) and no ERNIE term, actor 1 gets no gradient at all while
    actors 0 and 2 do: the actor loss of agent k reads only Q_k, and only through agent k's own action slot."""
    agent = make()
    with torch.no_grad():
        agent.critic.layers[-1].weight[1].zero_()
    loss, _ = agent.actor_loss(batch())
    grads = torch.autograd.grad(loss, agent.actor_params)
    for g in grads:
        assert g[1].abs().sum() == 0 and g[0].abs().sum() > 0 and g[2].abs().sum() > 0
    # and Q_0 changes with agent 0's action only through the stored batch of the others, not their actors
    data = batch()
    mu = agent.policy_per_agent(data["obs"].transpose(0, 1))
    joint = torch.where(agent._own_slot, mu.transpose(0, 1).unsqueeze(0), data["action"].unsqueeze(0))
    assert torch.equal(joint[0, :, 1:], data["action"][:, 1:]) and torch.equal(joint[0, :, 0], mu[0])


def test_per_agent_gradient_clipping():
    g = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.zeros(3, 4, 2))
    q = torch.nn.Parameter(torch.zeros(3, 1, 2))
    p.grad, q.grad = torch.randn(3, 4, 2, generator=g), torch.randn(3, 1, 2, generator=g)
    p.grad[1] *= 1e-3
    q.grad[1] *= 1e-3  # member 1 is under the limit: untouched
    before_p, before_q = p.grad.clone(), q.grad.clone()
    _clip_per_member([p, q], 0.5, 3)
    for k in range(3):
        old = torch.cat([before_p[k].flatten(), before_q[k].flatten()]).norm()
        new = torch.cat([p.grad[k].flatten(), q.grad[k].flatten()]).norm()
        expected = old if old <= 0.5 else torch.tensor(0.5)
        torch.testing.assert_close(new, expected, rtol=1e-4, atol=1e-6)


def test_save_load_act_identical_and_continue_identically():
    agent = make(dataclasses.replace(TINY, ernie_weight=0.5))
    train(agent, updates=2)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    clone = make(dataclasses.replace(TINY, ernie_weight=0.5), seed=99)  # other initial weights
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    obs = torch.randn(5, AGENTS, OBS)
    assert torch.equal(agent.act(obs, step=0, explore=False)[0], clone.act(obs, step=0, explore=False)[0])
    train(agent, updates=2, seed=5)
    train(clone, updates=2, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(params(agent), params(clone)))


def test_acting_explores_inside_the_box_and_greedy_is_deterministic():
    agent = make(dataclasses.replace(TINY, exploration_noise=5.0))
    obs = torch.randn(64, AGENTS, OBS)
    noisy, _ = agent.act(obs, step=0, explore=True)
    greedy, _ = agent.act(obs, step=0, explore=False)
    assert noisy.shape == (64, AGENTS, ACT) and noisy.abs().max() <= 1 and (noisy.abs() == 1).any()
    assert torch.equal(greedy, agent.act(obs, step=0, explore=False)[0]) and greedy.abs().max() < 1


def test_shared_parameters_one_network_with_agent_ids():
    agent = make(dataclasses.replace(TINY, shared_parameters=True))
    assert agent.actor.layers[0].weight.shape == (1, OBS + AGENTS, 8)
    obs = torch.randn(2, 1, OBS).expand(2, AGENTS, OBS)  # the same observation for every agent
    actions = agent.policy(obs)
    assert not torch.allclose(actions[:, 0], actions[:, 1])  # the id tells the agents apart
    metrics = agent.update(batch(), step=0)
    assert torch.isfinite(metrics["loss/critic"]) and torch.isfinite(metrics["loss/actor"])


def test_stackelberg_and_plain_gradients_differ():
    data = batch()
    grads = {}
    for form in ("stackelberg", "plain"):
        agent = make(dataclasses.replace(TINY, ernie_weight=1.0, ernie_form=form, ernie_init_std=0.1))
        torch.manual_seed(3)
        loss, _ = agent.actor_loss(data)
        grads[form] = torch.autograd.grad(loss, agent.actor_params)
    assert not all(torch.allclose(a, b) for a, b in zip(grads["stackelberg"], grads["plain"]))


def test_ernie_a_adds_a_critic_term():
    agent = make(dataclasses.replace(TINY, ernie_a_weight=1.0, ernie_a_budget=2))
    loss, metrics = agent.critic_loss(batch())
    assert metrics["train/ernie_a_penalty"] > 0
    plain, _ = make().critic_loss(batch())
    torch.testing.assert_close(loss, plain + metrics["train/ernie_a_penalty"])


def test_transition_fields_and_collector_rows_per_agent():
    fields = transition_fields(OBS_SPEC, ACTION_SPEC)
    assert fields["reward"] == ((AGENTS,), torch.float32) and fields["action"] == ((AGENTS, ACT), torch.float32)
    assert transition_fields(BoxSpec((3,)), BoxSpec((1,)))["reward"] == ((), torch.float32)  # single agent
    assert transition_fields(BoxSpec((3, 4)), DiscreteSpec(5, (3,)))["reward"] == ((), torch.float32)  # discrete
    assert multi_agent_box(OBS_SPEC, ACTION_SPEC) and not multi_agent_box(BoxSpec((3, 4)), BoxSpec((2, 2)))
    buffer = TransitionBuffer(fields, 4)
    rows = batch(rows=2)
    buffer.extend({k: v for k, v in rows.items()})
    assert torch.equal(buffer.storage["reward"][:2], rows["reward"])


def test_team_reward_env_rows_are_copied_to_every_agent():
    from agents.engine.collect import Collector
    from envs import make_vec_env

    env = make_vec_env("mpe:simple_spread", 2, seed=0, options={"actions": "continuous", "N": 2})  # team reward
    agent = MADDPG(env.obs_spec, env.action_spec, TINY)
    collector = Collector(env, agent, seed=0)
    rows = collector.step(0, random=True)
    assert rows["reward"].shape == (2, 2) and torch.equal(rows["reward"][:, 0], rows["reward"][:, 1])
    env.close()


def test_episode_stats_per_agent_rewards():
    stats = EpisodeStats(2, torch.device("cpu"), window=4)
    stats.record(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([False, False]))
    stats.record(torch.tensor([[1.0, 0.0], [0.5, 0.5]]), torch.tensor([True, False]))
    summary = stats.summary()
    assert summary["rollout/ep_rew_mean"] == 4.0  # env 0's team total: 1 + 2 + 1 + 0
    assert summary["rollout/ep_rew_mean_agent0"] == 2.0 and summary["rollout/ep_rew_mean_agent1"] == 2.0
    assert torch.equal(stats.running_agent_return, torch.tensor([[0.0, 0.0], [3.5, 4.5]]))
    assert torch.equal(stats.running_return, torch.tensor([0.0, 8.0]))
    fresh = EpisodeStats(2, torch.device("cpu"), window=4)
    fresh.load_state_dict(stats.state_dict())
    assert all(torch.equal(fresh.summary()[k], v) for k, v in summary.items())
    single = EpisodeStats(1, torch.device("cpu"))
    single.record(torch.tensor([2.0]), torch.tensor([True]))
    assert "rollout/ep_rew_mean_agent0" not in single.summary() and "running_agent_return" not in single.state_dict()


def test_bad_specs_fail_with_one_line():
    with pytest.raises(ConfigError, match="actions=continuous"):
        MADDPG(BoxSpec((3, 4)), DiscreteSpec(5, (3,)), TINY)
    with pytest.raises(ConfigError):
        MADDPG(BoxSpec((4,)), BoxSpec((2,)), TINY)
    with pytest.raises(ConfigError):
        get_preset("ernie/simple-sprad")


def test_mean_field_form_moves_only_the_atoms_inside_the_w1_ball():
    config = dataclasses.replace(TINY, ernie_weight=1.0, ernie_mean_field=(1, 1, 2), ernie_radius=0.5)
    agent = make(config)
    data = batch()
    seen = []
    original = agent.policy_per_agent

    def spy(obs, target=False):
        seen.append(obs.detach().clone())
        return original(obs, target)

    agent.policy_per_agent = spy
    penalty, delta = agent.mean_field_penalty(data["obs"].transpose(0, 1))
    assert delta.shape == (AGENTS, 16, 1, 2) and penalty > 0
    assert delta.norm(dim=-1).max() <= 0.5 + 1e-5  # one atom: the W1 ball is the l2 ball of its 2 features
    clean = data["obs"].transpose(0, 1)
    for obs in seen:  # features 0 and 3 never move; 1..2 do in the perturbed calls
        assert torch.equal(obs[..., 0], clean[..., 0]) and torch.equal(obs[..., 3], clean[..., 3])
    assert any(not torch.equal(obs[..., 1:3], clean[..., 1:3]) for obs in seen)
    loss, metrics = make(config).actor_loss(data)  # the actor loss routes to the mean-field form
    assert metrics["train/ernie_penalty"] > 0
    with pytest.raises(ConfigError, match="ernie_mean_field"):
        make(dataclasses.replace(TINY, ernie_mean_field=(3, 1, 2)))


def test_action_scale_measures_the_penalty_in_the_env_units():
    """D in MPE's [0, 1] units (h = 0.5) is h^2 = 1/4 of the canonical distance: weight 1 at h = 0.5 is weight 0.25
    at h = 1 (same delta*, same random draws), and the MPE presets use h = 0.5, VMAS h = 1."""
    data = batch()
    grads, penalties = {}, {}
    for name, weight, scale in (("env units", 1.0, 0.5), ("canonical", 0.25, 1.0), ("unscaled", 1.0, 1.0)):
        agent = make(dataclasses.replace(TINY, ernie_weight=weight, ernie_action_scale=scale))
        torch.manual_seed(3)
        loss, metrics = agent.actor_loss(data)
        grads[name] = torch.autograd.grad(loss, agent.actor_params)
        penalties[name] = metrics["train/ernie_penalty"]
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads["env units"], grads["canonical"]))
    assert torch.allclose(penalties["env units"], 0.25 * penalties["unscaled"])
    assert not all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads["env units"], grads["unscaled"]))
    assert get_preset("ernie/simple-spread").agent.ernie_action_scale == 0.5
    assert get_preset("ernie-0.2/simple-tag").agent.ernie_action_scale == 0.5
    assert get_preset("ernie/vmas-navigation").agent.ernie_action_scale == 1.0


def actor_loss_with_delta(agent, data):
    """``(agent.actor_loss(data), delta)``: the loss and the perturbation ``[n, B, D]`` the ERNIE penalty used,
    read by wrapping the learner module's ``ernie_penalty`` for this one call."""
    seen = {}
    original = agents_maddpg.ernie_penalty

    def spy(*args, **kwargs):
        seen["out"] = original(*args, **kwargs)
        return seen["out"]

    agents_maddpg.ernie_penalty = spy
    try:
        out = agent.actor_loss(data)
    finally:
        agents_maddpg.ernie_penalty = original
    return out, seen["out"][1]


def test_actor_loss_composition_by_hand_on_two_rows():
    """L_mu = sum_k [-mean_b Q_k(o, a with a_k = mu_k(o_k))] + lambda n h^2 mean_{k,b} ||mu_k(o_k + d) - mu_k(o_k)||^2,
    every term computed by hand from the networks' weights and the attack's delta: a wrong sign (or a missing n or
    h^2) of the ERNIE term fails."""
    weight, scale, rows = 0.7, 0.5, 2
    agent = make(dataclasses.replace(TINY, ernie_weight=weight, ernie_action_scale=scale, ernie_radius=1.0))
    data = batch(rows=rows)
    torch.manual_seed(5)
    (loss, metrics), delta = actor_loss_with_delta(agent, data)
    # delta [n, B, D]: the attack's perturbation (its search is tested in tests/test_robust.py)
    assert delta.abs().sum() > 0
    q_term, distance = 0.0, 0.0
    for b in range(rows):
        obs, stored = data["obs"][b], data["action"][b]  # [n, D], [n, A]
        mu = [torch.tanh(_forward(_member(agent.actor, k), obs[k])) for k in range(AGENTS)]
        for k in range(AGENTS):
            joint = stored.clone()
            joint[k] = mu[k]
            q_term -= _forward(_member(agent.critic, k), torch.cat([obs.reshape(-1), joint.reshape(-1)]))[0] / rows
            moved = torch.tanh(_forward(_member(agent.actor, k), obs[k] + delta[k, b]))
            distance += scale**2 * (moved - mu[k]).pow(2).sum() / (AGENTS * rows)
    assert distance > 1e-3  # the ERNIE term is large enough for its sign to matter
    expected = q_term + weight * AGENTS * distance
    torch.testing.assert_close(loss.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["train/ernie_penalty"], distance.detach(), rtol=1e-5, atol=1e-7)


def _speaker_listener_agent(**agent_options):
    config = apply_overrides(get_preset("ernie/speaker-listener"), ["agent.hidden=[8,8]"])
    config = dataclasses.replace(config, agent=dataclasses.replace(config.agent, **agent_options))
    env = make_vec_env(config.env.id, 1, seed=0, options=config.env.options)
    obs_spec, action_spec, dims = env.obs_spec, env.action_spec, list(env.obs_dims)
    env.close()
    torch.manual_seed(0)
    return build(config, obs_spec, action_spec, "cpu"), dims


@pytest.mark.parametrize("gaussian", [False, True])
def test_penalty_moves_only_the_real_features_of_padded_observations(gaussian):
    """Speaker-listener: the speaker sees 3 features, the listener 11; the speaker's row is zero-padded to 11. The
    penalty's delta (PGD and Baseline-Gaussian) is 0 on the padding and uses the whole ball on the real features."""
    agent, dims = _speaker_listener_agent(ernie_baseline_gaussian=gaussian, ernie_radius=0.3)
    assert dims == [3, 11] and agent.obs_mask is not None
    width = agent.obs_dim
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(32, 2, width, generator=g)
    obs[:, 0, dims[0] :] = 0.0  # the padding
    data = {"obs": obs, "action": torch.rand(32, 2, agent.action_dim, generator=g) * 2 - 1}
    _, delta = actor_loss_with_delta(agent, data)
    assert torch.equal(delta[0, :, dims[0] :], torch.zeros_like(delta[0, :, dims[0] :]))  # fails without the mask
    assert delta[0, :, : dims[0]].abs().min() > 0 and delta[1].abs().min() > 0
    if not gaussian:  # the PGD ends on the sphere of its real features
        torch.testing.assert_close(delta.norm(dim=-1), torch.full((2, 32), 0.3), rtol=1e-4, atol=1e-5)


def test_spread_ball_is_measured_once_scales_delta_and_is_checkpointed():
    """ernie_scale='spread': delta = u * s, s each agent's per-feature std over the first training batch; a feature
    that never varies (s = 0) never moves; s survives save/load and is not re-measured."""
    config = dataclasses.replace(TINY, ernie_weight=1.0, ernie_scale="spread", ernie_radius=0.4)
    agent = make(config)
    first = batch(rows=64)
    first["obs"][:, :, 1] *= 10.0
    first["obs"][:, :, 3] = 0.5  # constant: spread 0
    agent.update(first, step=0)
    spread = agent.obs_spread
    torch.testing.assert_close(spread, first["obs"].std(0))
    assert torch.all(spread[:, 3] == 0) and torch.all(spread[:, 1] > 5 * spread[:, 0])
    agent.update(batch(rows=64, seed=7), step=1)
    assert torch.equal(agent.obs_spread, spread)  # measured once
    _, delta = actor_loss_with_delta(agent, first)
    assert torch.all(delta[..., 3] == 0)
    u = (delta / spread[:, None].clamp_min(1e-12))[..., :3].norm(dim=-1)  # the ball is in spread units
    assert u.max() <= 0.4 + 1e-5 and u.median() > 0.4 - 1e-4  # (rows on a dead ReLU stay at their start)
    state = io.BytesIO()
    torch.save(agent.state_dict(), state)
    state.seek(0)
    fresh = make(config)
    fresh.load_state_dict(torch.load(state, weights_only=True))
    assert torch.equal(fresh.obs_spread, spread)
    with pytest.raises(RuntimeError, match="spread"):
        make(config).actor_loss(first)  # no spread measured yet


def test_the_algorithm_name_never_claims_maddpg_for_a_regularized_run(tmp_path):
    from agents import get_preset, run_training

    config = apply_overrides(get_preset("maddpg/simple-spread"), ["agent.ernie_weight=0.5"])
    with pytest.raises(ConfigError, match="algo maddpg runs without ERNIE's terms"):
        run_training(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_ablation_presets_are_the_ernie_arm_but_for_one_switch():
    """ERNIE w/o ST and Baseline-Gaussian differ from ernie/simple-spread (lambda 1, action scale 0.5, the same ball,
    steps, start, env and budget) only in the switch that makes them the paper's ablations."""
    ernie = get_preset("ernie/simple-spread")
    for name, switch in (
        ("ernie-wo-st", {"ernie_form": "plain"}),
        ("ernie-gaussian", {"ernie_baseline_gaussian": True}),
    ):
        ablation = get_preset(f"{name}/simple-spread")
        assert ablation.agent == dataclasses.replace(ernie.agent, **switch) and ablation.agent != ernie.agent
        assert (ablation.algo, ablation.env, ablation.train) == (ernie.algo, ernie.env, ernie.train)
    assert ernie.agent.ernie_weight == 1.0 and ernie.agent.ernie_action_scale == 0.5
