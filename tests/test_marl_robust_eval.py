"""Robustness evaluation of multi-agent continuous runs: the torch-level perturbation wrappers (envs/perturb_torch.py),
the policy-side attack and malicious agents (agents/robustness/multi_agent.py), and evaluate.py end to end on tiny
``maddpg/simple-spread`` and ``ernie/simple-spread`` runs, with its one-line errors on bad input."""

import dataclasses
import json

import pytest
import torch

import evaluate
from agents import get_preset
from agents import run_training as train
from agents.engine.config import apply_overrides
from agents.maddpg import MADDPG, MADDPGConfig
from agents.robustness.multi_agent import AttackedAgent, MaliciousAgent, RecordingAgent
from envs import make_vec_env
from envs.perturb_torch import AgentMass, ObservationNoiseVec

SPREAD = {"actions": "continuous", "reward": "agent", "N": 3}
TINY_RUN = [
    "agent.hidden=[16,16]",
    "train.total_steps=200",
    "train.update_after_steps=100",
    "train.batch_size=32",
    "train.updates_per_step=0.25",
    "train.eval_every=0",
    "train.eval_episodes=1",
    "train.log_every=100",
    "train.checkpoint_every=100",
    "train.progress=false",
]


def spread(num_envs=2, **options):
    return make_vec_env("mpe:simple_spread", num_envs, seed=0, options={**SPREAD, **options})


def test_observation_noise_vec_adds_paired_gaussian_noise():
    clean, noisy = spread(), ObservationNoiseVec(spread(), sigma=0.5, seed=3)
    diff = noisy.reset(seed=7) - clean.reset(seed=7)
    action = torch.zeros(2, 3, 5)
    diffs = [diff] + [noisy.step(action).obs - clean.step(action).obs for _ in range(30)]
    every = torch.stack(diffs)
    assert abs(float(every.std()) - 0.5) < 0.03 and abs(float(every.mean())) < 0.03
    again = ObservationNoiseVec(spread(), sigma=0.5, seed=3)  # same seeds: the same noise (paired evaluation)
    assert torch.equal(again.reset(seed=7) - spread().reset(seed=7), diff)
    assert not torch.equal(ObservationNoiseVec(spread(), sigma=0.5, seed=4).reset(seed=7) - clean.reset(seed=7), diff)
    assert torch.equal(ObservationNoiseVec(spread(), sigma=0.0).reset(seed=7), spread().reset(seed=7))
    out = noisy.step(action)  # the true final observation stays clean; attributes pass through
    assert noisy.n_agents == 3 and out.final_obs.shape == out.obs.shape
    with pytest.raises(ValueError):
        ObservationNoiseVec(spread(), sigma=-1.0)


def test_observation_noise_leaves_padding_alone():
    opts = {"actions": "continuous", "reward": "agent"}
    env = ObservationNoiseVec(make_vec_env("mpe:simple_tag", 2, seed=0, options=opts), sigma=1.0, seed=0)
    obs = env.reset(seed=1)
    assert env.obs_dims == (16, 16, 16, 14)
    assert not obs[:, 3, 14:].any() and obs[:, 3, :14].abs().min() > 0 and obs[:, 0, 14:].abs().min() > 0


def test_agent_mass_scales_every_agent_and_slows_it():
    nominal, heavy = spread(), AgentMass(spread(), 2.0)
    for world in (c.env.unwrapped.world for c in heavy.copies):
        assert [a.mass for a in world.agents] == [2.0, 2.0, 2.0]
    nominal.reset(seed=5)
    heavy.reset(seed=5)
    action = torch.ones(2, 3, 5) * torch.tensor([-1.0, 1.0, -1.0, -1.0, -1.0])  # push along +x only
    velocity = nominal.step(action).obs[..., :2], heavy.step(action).obs[..., :2]  # obs starts with own velocity
    # from rest one step gives v = F / m dt: twice the mass, half the velocity
    torch.testing.assert_close(velocity[1], velocity[0] / 2)
    assert velocity[0][..., 0].abs().min() > 0
    with pytest.raises(ValueError, match="MPE"):
        AgentMass(make_vec_env("matrix:penalty", 1), 2.0)


def test_agent_mass_on_vmas_scales_every_agent_and_halves_the_first_velocity():
    options = {"actions": "continuous", "reward": "agent", "max_steps": 10}
    nominal = make_vec_env("vmas:navigation", 2, options=options)
    heavy = AgentMass(make_vec_env("vmas:navigation", 2, options=options), 2.0)
    assert [agent.mass for agent in heavy._env.agents] == [2.0, 2.0, 2.0]
    assert torch.equal(nominal.reset(seed=5), heavy.reset(seed=5))
    action = torch.zeros(2, 3, 2)
    action[..., 0] = 1.0  # push along +x
    velocity = nominal.step(action).obs[..., 2:4], heavy.step(action).obs[..., 2:4]  # obs: position, velocity, ...
    torch.testing.assert_close(velocity[1], velocity[0] / 2)
    assert velocity[0][..., 0].min() > 0
    heavy.reset(seed=6)  # resets keep the mass
    assert [agent.mass for agent in heavy._env.agents] == [2.0, 2.0, 2.0]


def tiny_agent(seed=0):
    torch.manual_seed(seed)
    from envs.base import BoxSpec

    return MADDPG(BoxSpec((3, 6)), BoxSpec((3, 2)), MADDPGConfig(hidden=(16, 16)))


def test_attack_stays_in_the_ball_and_beats_random_noise():
    agent = tiny_agent()
    obs = torch.randn(8, 3, 6)
    seen = RecordingAgent(agent)
    attacked = AttackedAgent(seen, eps=0.2, generator=torch.Generator().manual_seed(0))
    action, _ = attacked.act(obs, step=0, explore=False)
    perturbed = seen.seen[0]
    assert (perturbed - obs).abs().max() <= 0.2 + 1e-6 and not torch.equal(perturbed, obs)
    assert torch.equal(action, agent.act(perturbed, step=0, explore=False)[0])
    with torch.no_grad():
        clean = agent.policy(obs)
        worst = (agent.policy(perturbed) - clean).pow(2).sum(-1).mean()
        corners = (torch.randint(0, 2, (64, *obs.shape), generator=torch.Generator().manual_seed(1)) * 2 - 1) * 0.2
        moved = agent.policy((obs + corners).reshape(-1, 3, 6)).reshape(64, *clean.shape)
        random = (moved - clean).pow(2).sum(-1).mean()
    assert worst > 2 * random


@pytest.mark.parametrize("mode", ["random", "adversarial"])
def test_malicious_agents_change_only_their_own_actions(mode):
    agent = tiny_agent()
    obs = torch.randn(16, 3, 6)
    honest, _ = agent.act(obs, step=0, explore=False)
    bad = MaliciousAgent(agent, [1], mode, generator=torch.Generator().manual_seed(0))
    action, _ = bad.act(obs, step=0, explore=False)
    assert torch.equal(action[:, [0, 2]], honest[:, [0, 2]]) and not torch.allclose(action[:, 1], honest[:, 1])
    assert action.abs().max() <= 1
    if mode == "adversarial":  # worse for the critic than the policy's action and than a random one
        random, _ = MaliciousAgent(agent, [1], "random", generator=torch.Generator().manual_seed(0)).act(
            obs, step=0, explore=False
        )
        with torch.no_grad():
            assert agent.team_value(obs, action).mean() < agent.team_value(obs, honest).mean()
            assert agent.team_value(obs, action).mean() < agent.team_value(obs, random).mean()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("marl_robust")
    out = {}
    for preset in ("maddpg/simple-spread", "ernie/simple-spread"):
        out[preset] = train(apply_overrides(get_preset(preset), TINY_RUN), root / preset.replace("/", "-"))
    return out


def latest_report(run_dir):
    return json.loads(sorted((run_dir / "eval").glob("eval_*.json"))[-1].read_text())


def test_train_logs_per_agent_returns_and_ernie_terms(runs):
    lines = [json.loads(line) for line in (runs["ernie/simple-spread"] / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*lines)
    assert {"rollout/ep_rew_mean_agent0", "rollout/ep_rew_mean_agent2", "loss/actor_agent1", "loss/critic_agent1",
            "train/ernie_penalty", "train/ernie_delta_norm"} <= keys  # fmt: skip
    # the team return is the sum of the agents' returns
    row = next(line for line in lines if "rollout/ep_rew_mean_agent0" in line)
    total = sum(row[f"rollout/ep_rew_mean_agent{k}"] for k in range(3))
    assert row["rollout/ep_rew_mean"] == pytest.approx(total, rel=1e-5)
    maddpg_keys = set().union(*(json.loads(x) for x in (runs["maddpg/simple-spread"] / "metrics.jsonl").open()))
    assert "train/ernie_penalty" not in maddpg_keys and "loss/actor" in maddpg_keys


@pytest.mark.parametrize("preset", ["maddpg/simple-spread", "ernie/simple-spread"])
def test_evaluate_noise_attack_lipschitz_end_to_end(runs, preset, capsys):
    run_dir = runs[preset]
    argv = [str(run_dir), "--episodes", "2", "--envs", "2", "--obs-noise", "0", "0.3", "--attack", "0.05",
            "--lipschitz", "--lipschitz-bank", "100"]  # fmt: skip
    assert evaluate.main(argv) == 0
    out = capsys.readouterr().out
    assert "observation noise" in out and "observation attack" in out and "Lipschitz" in out
    report = latest_report(run_dir)
    noise = report["observation_noise"]
    assert noise[0]["mean_reward"] == report["nominal"]["mean_reward"]  # sigma 0: the nominal episodes exactly
    assert noise[1]["mean_reward"] != report["nominal"]["mean_reward"]
    attack = report["observation_attack"]
    assert attack["clean"] == report["nominal"] and attack["results"][0]["eps"] == 0.05
    assert attack["results"][0]["action_deviation"] > 0
    lipschitz = report["lipschitz"]
    assert lipschitz["observations_per_agent"] == 50  # 2 episodes x 25 steps
    assert 0 < lipschitz["random_mean"] <= lipschitz["pgd_max"] and lipschitz["jacobian_mean"] > 0
    assert len(lipschitz["jacobian_mean_per_agent"]) == 3
    assert (run_dir / "eval" / "observation_noise.png").is_file()
    assert (run_dir / "eval" / "observation_attack.png").is_file()


def test_evaluate_agent_mass_and_malicious_agents(runs):
    run_dir = runs["maddpg/simple-spread"]
    argv = [str(run_dir), "--episodes", "2", "--envs", "2", "--agent-mass", "1", "3", "--malicious", "0", "2",
            "--malicious-mode", "adversarial"]  # fmt: skip
    assert evaluate.main(argv) == 0
    report = latest_report(run_dir)
    assert report["agent_mass"][0]["mean_reward"] == report["nominal"]["mean_reward"]  # scale 1 is nominal
    assert report["agent_mass"][1]["mean_reward"] != report["nominal"]["mean_reward"]
    malicious = report["malicious_agents"]
    assert malicious["agents"] == [0, 2] and malicious["mode"] == "adversarial"
    assert malicious["delta"] == pytest.approx(malicious["clean"]["mean_reward"] - malicious["mean_reward"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--attack", "0"], "radii must be > 0"),
        (["--attack", "-0.1"], "radii must be > 0"),
        (["--malicious", "3"], "unknown agent index [3]"),
        (["--agent-mass", "0"], "scales must be > 0"),
        (["--obs-noise", "-1"], "stds must be >= 0"),
        (["--action-noise", "0.1"], "not available for multi-agent"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(runs, argv, message, capsys):
    assert evaluate.main([str(runs["maddpg/simple-spread"]), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_continuous_only_options_refused_on_a_discrete_run(tmp_path, capsys):
    run_dir = train(apply_overrides(get_preset("roe/penalty"), ["agent.hidden_dim=8", "total_steps=40",
                                                               "progress=false"]), tmp_path / "discrete")  # fmt: skip
    for option in (["--attack", "0.1"], ["--lipschitz"], ["--malicious", "0"], ["--obs-noise", "0.1"]):
        assert evaluate.main([str(run_dir), "--episodes", "1", *option]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_config_can_name_the_torch_wrappers():
    config = get_preset("maddpg/simple-spread")
    env_config = dataclasses.replace(config.env, wrappers=[{"name": "observation_noise_torch", "sigma": 0.1}])
    env = make_vec_env(env_config.id, 1, seed=0, options=env_config.options, wrappers=env_config.wrappers)
    assert isinstance(env, ObservationNoiseVec) and env.sigma == 0.1


def test_python_api_loads_and_scores_a_maddpg_run(runs):
    import agents

    policy = agents.load_policy(runs["maddpg/simple-spread"])
    assert policy.multi_agent and policy.observation_shape == (3, 18)
    obs = torch.zeros(3, 18).numpy()
    action, _ = policy.predict(obs)
    assert action.shape == (3, 5) and abs(action).max() <= 1
    summary = agents.evaluate(policy, episodes=2)
    assert summary["episodes"] == 2 and summary["mean_ep_length"] == 25
    assert "mean_discounted_reward" not in summary  # multi-agent summaries keep one schema


@pytest.mark.parametrize("target", ["action", "value"])
def test_attacks_perturb_only_the_real_features(target):
    """Zero-padded observations (an agent with fewer features): both attacks leave the padding at 0."""
    agent = tiny_agent()
    mask = torch.ones(3, 6)
    mask[1, 2:] = 0.0  # agent 1 has 2 real features
    obs = torch.randn(8, 3, 6)
    obs[:, 1, 2:] = 0.0
    seen = RecordingAgent(agent)
    AttackedAgent(seen, eps=0.2, generator=torch.Generator().manual_seed(0), target=target, mask=mask).act(
        obs, step=0, explore=False
    )
    moved = seen.seen[0] - obs
    assert torch.equal(moved[:, 1, 2:], torch.zeros(8, 4))  # fails without the mask
    assert (moved[:, 1, :2] != 0).float().mean() > 0.5 and (moved[:, [0, 2]] != 0).float().mean() > 0.5
    assert moved.abs().max() <= 0.2 + 1e-6


def test_value_attack_lowers_the_critic_more_than_the_action_attack():
    """The value-aimed attack picks o' to minimize team_value(o, mu(o')), with o the true observations."""
    agent = tiny_agent()
    obs = torch.randn(64, 3, 6)

    def value_after(target, seed=0):
        seen = RecordingAgent(agent)
        attacked = AttackedAgent(seen, eps=0.2, generator=torch.Generator().manual_seed(seed), target=target)
        attacked.act(obs, step=0, explore=False)
        with torch.no_grad():
            return agent.team_value(obs, agent.policy(seen.seen[0])).mean(), attacked

    with torch.no_grad():
        clean = agent.team_value(obs, agent.policy(obs)).mean()
        corners = (torch.randint(0, 2, obs.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1) * 0.2
        random = agent.team_value(obs, agent.policy(obs + corners)).mean()
    value, attacked = value_after("value")
    action_aimed, _ = value_after("action")
    assert value < clean and value < random and value < action_aimed
    assert attacked.value_drop == pytest.approx(float(clean - value), rel=1e-4)


def test_env_obs_dims_of_a_padded_task_and_no_rng_drawn():
    from agents.robustness.multi_agent import env_obs_dims
    from agents.robustness.robust import padding_mask

    state = torch.get_rng_state()
    dims = env_obs_dims(get_preset("maddpg/speaker-listener"))
    assert torch.equal(state, torch.get_rng_state())
    assert dims == [3, 11]
    mask = padding_mask(dims, 11)
    assert mask[0].tolist() == [1.0] * 3 + [0.0] * 8 and mask[1].sum() == 11
    assert padding_mask(env_obs_dims(get_preset("maddpg/simple-spread")), 18) is None


def test_evaluate_value_attack_end_to_end(runs, capsys):
    run_dir = runs["maddpg/simple-spread"]
    argv = [str(run_dir), "--episodes", "2", "--envs", "2", "--attack", "0.1", "--value-attack", "0.1"]
    assert evaluate.main(argv) == 0
    out = capsys.readouterr().out
    assert "value-aimed observation attack" in out and "observation attack (l-inf" in out
    report = latest_report(run_dir)
    value, action = report["value_attack"], report["observation_attack"]
    assert value["target"] == "value" and action["target"] == "action" and not value["masked"]
    assert value["clean"] == report["nominal"] and value["results"][0]["eps"] == 0.1
    assert value["results"][0]["value_drop"] > 0
    assert (run_dir / "eval" / "value_attack.png").is_file()
