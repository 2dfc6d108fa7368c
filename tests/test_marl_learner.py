"""The factorized (distributional) Q-learner: ROE at alpha = 0 is DMIX bit for bit, the loss by hand,
the DMIX / DDN algebra, the IQN head, masking, the evaluation region, save -> load -> act."""

import dataclasses
import io

import pytest
import torch
from marl_checks import check_clone_acts_and_updates_like_the_original

from agents.engine.losses import quantile_huber_loss
from agents.marl import ALGORITHM_CONFIGS, FactorizedQLearner, MarlConfig
from agents.marl.learner import greedy_actions
from agents.marl.loop import EpisodicConfig, train_episodic
from agents.marl.mixers import QMixer, QuantileQMixer, SumMixer
from agents.marl.nets import QuantileEmbedding, RecurrentAgentNet
from envs.matrix_games import MatrixGame
from envs.predator_prey import PredatorPrey

LOOP = EpisodicConfig(
    total_steps=100,
    batch_episodes=4,
    buffer_episodes=50,
    update_after_episodes=4,
    eval_every=30,
    eval_episodes=2,
    log_every=10,
)


@pytest.fixture
def config(tiny_marl_config):
    """``config(algo="dmix", **changes)``: a tiny learner config whose epsilon and risk schedules anneal within
    the 100 steps of ``LOOP``, so the schedules move in these short runs."""
    return lambda algo="dmix", **changes: tiny_marl_config(
        algo, **{"epsilon_anneal_steps": 100, "risk_anneal_steps": 100, **changes}
    )


def small_prey(n=2, seed=0):
    return PredatorPrey(num_envs=n, grid_size=4, n_agents=2, n_stags=1, episode_limit=5, seed=seed)


def learner_for(env, cfg, seed=0):
    return FactorizedQLearner(env.obs_spec, env.state_spec, env.action_spec, cfg, seed=seed)


def train(cfg, loop=LOOP):
    env, eval_env = small_prey(), small_prey(2, seed=1)
    agent = learner_for(env, cfg)
    out = train_episodic(env, agent, loop, eval_env=eval_env)
    return agent, out


def flat_state(agent):
    sd = agent.state_dict()
    tensors = {}
    for part in ("net", "mixer", "target_net", "target_mixer"):
        tensors.update({f"{part}.{k}": v for k, v in sd[part].items()})
    for i, s in sd["optimizer"]["state"].items():
        tensors.update({f"adam.{i}.{k}": v for k, v in s.items() if torch.is_tensor(v)})
    return tensors


# --------------------------------------------------------------------------------------------------
# The risk-neutral ROE is the baseline, bit for bit.


@pytest.mark.parametrize("mixer", ["qmix", "sum"])
def test_roe_at_risk_zero_equals_the_baseline_bit_for_bit(mixer, config):
    base, base_out = train(config("dmix", mixer=mixer))
    roe, roe_out = train(config("roe", mixer=mixer, risk_start=0.0, risk_end=0.0))
    assert base_out["updates"] >= 8  # past a target copy (every 5 updates)
    a, b = flat_state(base), flat_state(roe)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert torch.equal(base_out["final_eval"]["eval/mean_reward"], roe_out["final_eval"]["eval/mean_reward"])
    # ... and the comparison can fail: a nonzero risk level changes the weights.
    shifted, _ = train(config("roe", mixer=mixer, risk_start=0.5, risk_end=0.5))
    assert not all(torch.equal(a[n], v) for n, v in flat_state(shifted).items())


# --------------------------------------------------------------------------------------------------
# Quantile Huber by hand.


def test_quantile_huber_on_three_hand_computed_rows():
    pred = torch.tensor([[0.0], [2.0], [0.0]])
    target = torch.tensor([[0.5, -0.5], [0.0, 4.0], [3.0, 0.0]])
    taus = torch.tensor([[0.25], [0.25], [0.9]])
    # row 0: d=+0.5 -> .25*.125, d=-0.5 -> .75*.125          (|d| <= 1: 0.5 d^2)
    # row 1: d=-2 -> .75*1.5, d=+2 -> .25*1.5                  (|d| > 1: |d| - 0.5)
    # row 2: d=+3 -> .9*2.5, d=0 -> 0
    expected = torch.tensor([(0.03125 + 0.09375) / 2, (1.125 + 0.375) / 2, 2.25 / 2])
    assert torch.allclose(quantile_huber_loss(pred, target, taus), expected)


def rho(tau, d):
    huber = 0.5 * d * d if abs(d) <= 1 else abs(d) - 0.5
    return abs(tau - (1.0 if d < 0 else 0.0)) * huber


def test_learner_loss_matches_the_spec_formula_by_hand(config):
    env = MatrixGame(game="wqmix", num_envs=3)
    agent = learner_for(env, config("dmix"))
    batch = {
        "obs": torch.ones(3, 2, 2, 5),
        "state": torch.ones(3, 2, 5),
        "avail_actions": torch.ones(3, 2, 2, 3, dtype=torch.bool),
        "actions": torch.tensor([[[0, 0], [0, 0]], [[0, 1], [0, 0]], [[2, 1], [0, 0]]]),
        "reward": torch.tensor([[8.0, 0.0], [-12.0, 0.0], [0.0, 0.0]]),
        "terminated": torch.tensor([[True, False]] * 3),
        "filled": torch.tensor([[True, False]] * 3),
    }
    saved = agent.train_generator.get_state()
    loss, _ = agent.td_loss(batch, step=0)
    agent.train_generator.set_state(saved)
    taus = torch.rand((3, 2, 4), generator=agent.train_generator)  # the online draws (U[0,1])
    with torch.no_grad():
        z = agent.unroll(agent.net, batch, taus)[:, 0]  # [B, agents, A, N] at t = 0
        total = 0.0
        for b in range(3):
            chosen = torch.stack([z[b, i, batch["actions"][b, 0, i]] for i in range(2)])  # [agents, N]
            mean = chosen.mean(-1)
            joint = agent.mixer.qmix(mean, batch["state"][b, 0]) + (chosen - mean[:, None]).sum(0)  # [N]
            y = batch["reward"][b, 0].item()  # terminal: no bootstrap, target quantiles all equal r
            total += sum(rho(taus[b, 0, k].item(), y - joint[k].item()) for k in range(4))  # mean over N' equal
    assert loss.item() == pytest.approx(total / 3, rel=1e-5)


def test_padded_steps_do_not_change_the_loss(config):
    env = small_prey()
    agent = learner_for(env, config("dmix"))
    _, out = train(config("dmix"), dataclasses.replace(LOOP, total_steps=20, update_after_episodes=1000))
    batch = out["buffer"].sample(4)
    batch["filled"][:, 3:] = False  # pretend the episodes ended after 3 steps
    batch["terminated"][:, 2] = True
    state = agent.train_generator.get_state()
    loss, _ = agent.td_loss(batch, step=0)
    batch["reward"][:, 3:] = 1e6
    batch["obs"][:, 4:] = -5.0
    agent.train_generator.set_state(state)
    assert torch.equal(agent.td_loss(batch, step=0)[0], loss)


# --------------------------------------------------------------------------------------------------
# DMIX algebra, DDN, IQN embedding.


def test_dmix_algebra():
    torch.manual_seed(0)
    mixer = QuantileQMixer(n_agents=3, state_dim=4, embed_dim=8, hypernet_embed=16)
    state = torch.randn(5, 4)
    means = torch.randn(5, 3)
    flat = means[..., None].expand(5, 3, 6)  # every shape term zero
    out = mixer(flat, state)
    assert torch.allclose(out, out[..., :1].expand_as(out))  # constant in tau
    assert torch.allclose(out[..., 0], mixer.qmix(means, state))
    z = torch.randn(5, 3, 6)
    assert torch.allclose(mixer(z, state).mean(-1), mixer.qmix(z.mean(-1), state), atol=1e-5)
    q = torch.randn(5, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(mixer.qmix(q, state).sum(), q)
    assert (grad >= 0).all()  # monotone in every agent's mean
    one = torch.randn(5, 3, 1)  # K = 1: DMIX reduces to QMIX exactly (the scalar learner)
    assert torch.equal(mixer(one, state)[..., 0], mixer.qmix(one[..., 0], state))
    assert isinstance(mixer.qmix, QMixer)


def test_ddn_sums_agents_at_shared_fractions_and_refuses_per_agent_fractions():
    torch.manual_seed(0)
    net = RecurrentAgentNet(input_dim=4, n_actions=3, hidden_dim=8, quantile_embed_dim=8)
    hidden = torch.randn(5, 2, 8)
    taus = torch.rand(5, 7)
    z = net.head(hidden, taus)
    assert z.shape == (5, 2, 3, 7)  # [batch, agents, actions, K]
    chosen = z[:, :, 0]  # [batch, agents, K]
    assert torch.equal(SumMixer()(chosen), chosen[:, 0] + chosen[:, 1])
    for i in range(2):  # agent i's quantiles are its own head at the shared taus
        alone = net.head(hidden[:, i : i + 1], taus)
        assert torch.allclose(alone[:, 0], z[:, i])
    with pytest.raises(ValueError):
        net.head(hidden, torch.rand(5, 2, 7))  # per-agent fractions
    with pytest.raises(ValueError):
        net.head(hidden, None)


def test_iqn_embedding_has_the_constant_cosine():
    embedding = QuantileEmbedding(embed_dim=6, out_dim=4)
    taus = torch.rand(3, 5)
    features = embedding.features(taus)
    assert features.shape == (3, 5, 6)
    assert torch.equal(features[..., 0], torch.ones(3, 5))  # cos(pi * 0 * tau) = 1
    assert torch.allclose(features[..., 2], torch.cos(2 * torch.pi * taus))
    assert embedding(taus).shape == (3, 5, 4)


def test_acting_fractions_are_shared_by_the_agents(config):
    env = MatrixGame(game="wqmix", num_envs=4)
    agent = learner_for(env, config("roe", risk_start=0.0))
    seen = []
    original = agent.utilities

    def spy(net, hidden, taus):
        seen.append(taus)
        z = original(net, hidden, taus)
        seen.append(z)
        return z

    agent.utilities = spy
    with torch.no_grad():  # make every agent's input identical: zero the agent-id weights
        agent.net.fc1.weight[:, -2:] = 0.0
    agent.act(env.reset(), step=0, avail_actions=env.current_info()["avail_actions"])
    taus, z = seen
    assert taus.shape == (4, agent.config.n_taus_act)  # one set per env row, no agent axis
    assert torch.equal(z[:, 0], z[:, 1])  # same inputs + same fractions -> identical quantiles


# --------------------------------------------------------------------------------------------------
# Masking and the evaluation region.


def test_unavailable_actions_are_never_chosen(config):
    z = torch.zeros(4, 2, 3, 5)
    z[..., 0, :] = 100.0  # action 0 looks best ...
    avail = torch.ones(4, 2, 3, dtype=torch.bool)
    avail[..., 0] = False  # ... but is unavailable
    z[..., 2, :] = 1.0
    assert (greedy_actions(z, avail) == 2).all()
    env = small_prey(n=8)
    agent = learner_for(env, config("dmix", epsilon_anneal_steps=10**6))  # epsilon ~ 1: random actions
    obs = env.reset()
    state = agent.initial_state(8)
    for step in range(30):
        avail = env.current_info()["avail_actions"]
        for explore in (True, False):
            action, _ = agent.act(obs, state, step=step, explore=explore, avail_actions=avail)
            assert avail.gather(-1, action[..., None]).all()
        action, state = agent.act(obs, state, step=step, explore=True, avail_actions=avail)
        obs = env.step(action).obs


def test_target_argmax_respects_the_mask(config):
    env = MatrixGame(game="wqmix", num_envs=2)
    agent = learner_for(env, config("ddn", gamma=1.0))  # sum mixer: the target is the agents' sum
    with torch.no_grad():  # the target net prefers action 1 by far
        agent.target_net.fc2.bias[:] = torch.tensor([0.0, 1000.0, 0.0])
    batch = {
        "obs": torch.ones(2, 2, 2, 5),
        "state": torch.ones(2, 2, 5),
        "avail_actions": torch.ones(2, 2, 2, 3, dtype=torch.bool),
        "actions": torch.zeros(2, 2, 2, dtype=torch.long),
        "reward": torch.zeros(2, 2),
        "terminated": torch.zeros(2, 2, dtype=torch.bool),
        "filled": torch.tensor([[True, False]] * 2),
    }
    _, open_stats = agent.td_loss(batch, step=0)
    batch["avail_actions"][:, 1, :, 1] = False  # action 1 unavailable in the next state
    _, masked_stats = agent.td_loss(batch, step=0)
    assert open_stats["train/target"] > 1500.0
    assert masked_stats["train/target"] < 100.0


def test_evaluation_is_greedy_at_the_full_region_whatever_the_schedule(config):
    env = MatrixGame(game="wqmix", num_envs=64)
    agent = learner_for(env, config("roe", risk_start=1.0, risk_end=1.0, epsilon_start=1.0, epsilon_end=1.0))
    seen = []
    original = agent.utilities
    agent.utilities = lambda net, hidden, taus: seen.append(taus) or original(net, hidden, taus)
    obs, avail = env.reset(), env.current_info()["avail_actions"]
    agent.act(obs, step=0, avail_actions=avail)
    assert torch.equal(seen[-1], torch.ones_like(seen[-1]))  # exploring: alpha = 1 -> tau = 1
    actions = agent.act(obs, step=0, explore=False, avail_actions=avail)[0]
    taus = seen[-1]
    assert taus.shape[-1] == agent.config.n_taus_eval and taus.min() < 0.1 and taus.max() > 0.9
    hidden = agent.net.recurrent(agent.build_inputs(obs, torch.zeros(64, 2, 3)), torch.zeros(64, 2, 16))
    expected = greedy_actions(original(agent.net, hidden, taus), avail)
    assert torch.equal(actions, expected)  # epsilon = 1 in the schedule, yet greedy


# --------------------------------------------------------------------------------------------------
# The rest of the contract.


def test_save_load_act_is_identical_and_training_continues_identically(config):
    agent, out = train(config("roe"))
    env = small_prey(4, seed=9)
    clone = learner_for(env, config("roe"), seed=123)
    clone.load_state_dict(agent.state_dict())
    check_clone_acts_and_updates_like_the_original(agent, clone, env, out["buffer"], batch_size=4)


@pytest.mark.parametrize("algo", ["vdn", "qmix", "ddn", "dmix", "roe"])
def test_every_algorithm_trains_and_reports_finite_metrics(algo, config):
    agent, out = train(config(algo), dataclasses.replace(LOOP, total_steps=30))
    metrics = agent.update(out["buffer"].sample(4), step=30)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert metrics["train/risk_level"].item() == pytest.approx(0.7 if algo == "roe" else 0.0)
    assert (agent.mixer.__class__ is SumMixer) == (algo in ("vdn", "ddn"))
    assert agent.net.distributional == (algo in ("ddn", "dmix", "roe"))


def test_mixer_and_agent_get_gradient_target_does_not(config):
    env = small_prey()
    agent = learner_for(env, config("dmix"))
    _, out = train(config("dmix"), dataclasses.replace(LOOP, total_steps=20, update_after_episodes=1000))
    loss, _ = agent.td_loss(out["buffer"].sample(4), step=0)
    loss.backward()
    assert all(p.grad is not None for p in agent.net.parameters())
    assert all(p.grad is not None for p in agent.mixer.parameters())
    assert all(p.grad is None for p in list(agent.target_net.parameters()) + list(agent.target_mixer.parameters()))


def test_marl_config_defaults_are_dfac_dmix():
    cfg = MarlConfig()
    assert (cfg.n_taus_online, cfg.n_taus_target, cfg.n_taus_act) == (8, 8, 32)
    assert (cfg.lr, cfg.adam_eps, cfg.grad_norm_clip, cfg.gamma) == (5e-4, 1e-5, 10.0, 0.99)
    assert (ALGORITHM_CONFIGS["ddn"].n_taus_online, ALGORITHM_CONFIGS["ddn"].n_taus_target) == (1, 1)


def test_k_steps_resume_k_steps_equals_2k_straight(config):
    def fresh():
        env, eval_env = small_prey(), small_prey(2, seed=1)
        return env, eval_env, learner_for(env, config("roe"))

    loop = dataclasses.replace(LOOP, total_steps=80, eval_every=30, checkpoint_every=40)
    env, eval_env, agent = fresh()
    saved = {}

    def save(step, state):  # serialize now, as a checkpoint file would (state_dicts alias live tensors)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        saved.setdefault(step, buffer.getvalue())

    straight = train_episodic(env, agent, loop, eval_env=eval_env, save=save)
    first = min(saved)
    assert 40 <= first < 80
    payload = torch.load(io.BytesIO(saved[first]), weights_only=True)
    env, eval_env, resumed_agent = fresh()
    resumed = train_episodic(env, resumed_agent, loop, eval_env=eval_env, resume=payload)
    assert resumed["steps"] == straight["steps"] and resumed["updates"] == straight["updates"]
    a, b = flat_state(agent), flat_state(resumed_agent)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert torch.equal(straight["final_eval"]["eval/mean_reward"], resumed["final_eval"]["eval/mean_reward"])


def test_a_checkpoint_of_the_episodic_loop_before_the_one_runner_resumes_bit_for_bit(config):
    """Before the episodic loop ran on Session parts its checkpoints held the counters as
    ``loop: {steps, episodes, updates}`` and no global RNG state: such a payload still resumes exactly."""
    from agents.engine.loops import upgrade_checkpoint

    def fresh():
        env, eval_env = small_prey(), small_prey(2, seed=1)
        return env, eval_env, learner_for(env, config("qmix"))

    loop = dataclasses.replace(LOOP, total_steps=80, eval_every=30, checkpoint_every=40)
    env, eval_env, agent = fresh()
    saved = {}

    def save(step, state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        saved.setdefault(step, buffer.getvalue())

    straight = train_episodic(env, agent, loop, eval_env=eval_env, save=save)
    first = torch.load(io.BytesIO(saved[min(saved)]), weights_only=True)
    extra = first.pop("extra")
    old = {k: v for k, v in first.items() if k != "torch_rng"}
    old["loop"] = {"steps": old.pop("step"), **extra}  # the old layout
    assert upgrade_checkpoint(old)["step"] == first["step"]
    env, eval_env, resumed_agent = fresh()
    resumed = train_episodic(env, resumed_agent, loop, eval_env=eval_env, resume=old)
    assert resumed["steps"] == straight["steps"] and resumed["updates"] == straight["updates"]
    a, b = flat_state(agent), flat_state(resumed_agent)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_run_writes_a_run_directory_and_resumes(tmp_path):
    import json

    from agents import run_training as run
    from agents.engine.config import apply_overrides
    from agents.marl import PRESETS

    cfg = apply_overrides(
        PRESETS["roe/predator-prey"],
        [
            "train.total_steps=200",
            "train.eval_every=100",
            "train.eval_episodes=2",
            "train.checkpoint_every=100",
            "train.batch_episodes=2",
            "train.update_after_episodes=2",
            "train.progress=false",
            "env.options.episode_limit=10",
            "agent.hidden_dim=8",
        ],
    )
    run(cfg, tmp_path)
    assert (tmp_path / "config.json").is_file() and list((tmp_path / "checkpoints").iterdir())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("eval/mean_reward" in r for r in rows) and any("train/risk_level" in r for r in rows)
    cfg_more = apply_overrides(cfg, ["train.total_steps=300"])
    run(cfg_more, tmp_path, resume=True)
    steps = [r["step"] for r in (json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines())]
    assert max(steps) == 300


def test_ddn_with_dfac_single_fractions_trains(config):
    cfg = dataclasses.replace(config("ddn"), n_taus_online=1, n_taus_target=1)
    agent, out = train(cfg, dataclasses.replace(LOOP, total_steps=30))
    metrics = agent.update(out["buffer"].sample(4), step=30)
    assert torch.isfinite(metrics["loss/td"]) and metrics["loss/td"] > 0
