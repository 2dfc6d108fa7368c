"""Prioritized replay in the learners: importance weights reach each agent's TD loss (by hand on 3-row
batches), the loops hand TD errors back as new priorities, a PER run resumes bit for bit, the MARL
learners replay whole episodes by priority, and ``prioritized=None`` leaves training unchanged."""

import copy
import hashlib

import pytest
import torch

from agents import get_preset
from agents import run_training as train
from agents.dqn import DQN, DQNConfig
from agents.engine.buffers import TransitionBuffer
from agents.engine.checkpoint import Checkpointer, load_checkpoint
from agents.engine.config import ConfigError, RunConfig, apply_overrides, from_dict, to_dict
from agents.engine.logger import MetricAccumulator
from agents.engine.loops import TD_ERROR, EpisodicConfig, OffPolicyConfig, beta_horizon, train_learner
from agents.engine.prioritized import PrioritizedConfig, PrioritizedSampler
from agents.engine.run import read_config
from agents.erc import ERC, ERCConfig
from agents.marl import FactorizedQLearner
from agents.marl.learner import episode_td_error
from agents.marl.loop import train_episodic
from agents.sac import SAC, SACConfig
from envs.base import BoxSpec, DiscreteSpec
from envs.predator_prey import PredatorPrey

OBS = BoxSpec((3,))
WEIGHTS = torch.tensor([0.25, 1.0, 0.5])


def transitions(action: torch.Tensor, weights: torch.Tensor | None = WEIGHTS) -> dict:
    g = torch.Generator().manual_seed(1)
    batch = {
        "obs": torch.randn(3, 3, generator=g),
        "action": action,
        "reward": torch.randn(3, generator=g),
        "next_obs": torch.randn(3, 3, generator=g),
        "terminated": torch.tensor([False, True, False]),
    }
    if weights is not None:
        batch["weights"], batch["index"] = weights, torch.tensor([4, 0, 2])
    return batch


def dqn(**kw) -> DQN:
    torch.manual_seed(0)
    return DQN(OBS, DiscreteSpec(4), DQNConfig(hidden=(8, 8), **kw))


def sac(cls=SAC, config=SACConfig, **kw):
    torch.manual_seed(0)
    return cls(OBS, BoxSpec((2,)), config(hidden=(8, 8), **kw))


# --------------------------------------------------------------------------------------------------
# Weights reach the loss, TD errors come back (by hand, 3 rows)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_dqn_weighted_loss_and_td_error_by_hand(loss):
    agent = dqn(loss=loss)
    batch = transitions(torch.tensor([0, 3, 1]))
    y = agent.critic_target_value(batch)
    q = agent.q_network(batch["obs"])[torch.arange(3), batch["action"]]
    value, metrics = agent.critic_loss(q, y, batch)
    rows = []
    for b in range(3):
        d = q[b].item() - y[b].item()
        rows.append(d * d if loss == "mse" else (0.5 * d * d if abs(d) < 1 else abs(d) - 0.5))
    expected = sum(WEIGHTS[b].item() * rows[b] for b in range(3)) / 3
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(metrics[TD_ERROR], (q - y).detach())
    assert not metrics[TD_ERROR].requires_grad
    # unit weights give the uniform loss; no weights: no td_error (the uniform metrics are scalars only)
    unit, _ = agent.critic_loss(q, y, {**batch, "weights": torch.ones(3)})
    plain, plain_metrics = agent.critic_loss(q, y, transitions(batch["action"], weights=None))
    assert torch.allclose(unit, plain) and TD_ERROR not in plain_metrics


def test_dqn_update_returns_td_error_only_for_prioritized_batches():
    agent = dqn()
    out = agent.update(transitions(torch.tensor([0, 3, 1])), step=0)
    assert out[TD_ERROR].shape == (3,)
    assert TD_ERROR not in dqn().update(transitions(torch.tensor([0, 3, 1]), weights=None), step=0)


def test_sac_weighted_critic_loss_and_td_error_by_hand():
    agent = sac()
    batch = transitions(torch.tensor([[0.1, -0.5], [0.9, 0.0], [-0.3, 0.7]]))
    y = agent.critic_target_value(batch)
    q = agent.critic(batch["obs"], batch["action"])  # [K=2, B=3]
    value, metrics = agent.critic_loss(q, y, batch)
    expected = 0.5 * sum(
        sum(WEIGHTS[b].item() * (q[k, b].item() - y[b].item()) ** 2 for b in range(3)) / 3 for k in range(2)
    )
    assert value.item() == pytest.approx(expected, rel=1e-6)
    by_hand = [(abs(q[0, b].item() - y[b].item()) + abs(q[1, b].item() - y[b].item())) / 2 for b in range(3)]
    assert metrics[TD_ERROR].tolist() == pytest.approx(by_hand, rel=1e-6)


def test_erc_adds_its_regularizer_to_the_weighted_sac_loss():
    """ERC overrides only critic_loss: the weights reach the TD part, the regularizer is added unweighted."""
    batch = transitions(torch.tensor([[0.1, -0.5], [0.9, 0.0], [-0.3, 0.7]]))
    base = sac(ERC, ERCConfig, regularizer_weight=0.0, diagnostics_every=0)
    reg = sac(ERC, ERCConfig, regularizer_weight=0.5, regularizer_clamp=None, diagnostics_every=0)
    y = base.critic_target_value(batch)
    q = base.critic(batch["obs"], batch["action"])
    sac_loss, _ = SAC.critic_loss(base, q, y, batch)
    zero, zero_metrics = base.critic_loss(q, y, batch)
    assert torch.equal(zero, sac_loss) and TD_ERROR in zero_metrics
    full, _ = reg.critic_loss(q, y, batch)
    e = (q - y).pow(2)  # [K, B]
    regularizer = 0.5 * (0.5 * (e - e.mean(-1, keepdim=True)).pow(2).mean(-1)).sum()  # 1/2 sum_k beta Var_b(e)
    assert full.item() == pytest.approx((sac_loss + regularizer).item(), rel=1e-5)


# --------------------------------------------------------------------------------------------------
# The loop hands TD errors back


def prioritized_buffer(rows: int = 8) -> TransitionBuffer:
    fields = {
        "obs": ((3,), torch.float32),
        "action": ((), torch.int64),
        "reward": ((), torch.float32),
        "next_obs": ((3,), torch.float32),
        "terminated": ((), torch.bool),
    }
    buffer = TransitionBuffer(fields, 16, seed=0, sampler=PrioritizedSampler(16, alpha=0.5, beta=0.4))
    g = torch.Generator().manual_seed(2)
    buffer.extend({
        "obs": torch.randn(rows, 3, generator=g), "action": torch.randint(0, 4, (rows,), generator=g),
        "reward": torch.randn(rows, generator=g), "next_obs": torch.randn(rows, 3, generator=g),
        "terminated": torch.zeros(rows, dtype=torch.bool),
    })  # fmt: skip
    return buffer


def test_train_learner_writes_new_priorities_and_pops_td_error():
    buffer = prioritized_buffer()
    agent = dqn()
    before = buffer.sampler.tree.leaves.clone()
    assert torch.equal(before[:8], torch.ones(8, dtype=torch.float64))  # new rows enter at max priority 1
    sampled = buffer.sample(4, step=0)  # the draw train_learner will make: same generator state
    buffer.generator.manual_seed(0)
    metrics = MetricAccumulator()
    q_before = dqn()  # the same initial weights: the TD errors of the update by hand
    y = q_before.critic_target_value(sampled)
    td = q_before.q_network(sampled["obs"])[torch.arange(4), sampled["action"]] - y
    train_learner(agent, buffer, 1, 4, 0, metrics)
    assert TD_ERROR not in metrics.values  # popped before reaching the logger
    after = buffer.sampler.tree.leaves
    expected = before.clone()
    for row, error in zip(sampled["index"].tolist(), td.detach().tolist()):
        expected[row] = (abs(error) + 1e-6) ** 0.5  # last write wins for a repeated row: same value
    assert torch.allclose(after, expected)
    assert not torch.equal(after, before)


def test_an_agent_without_td_errors_is_refused_on_a_prioritized_buffer():
    class NoPriorities:
        def update(self, batch, *, step):
            return {"loss/critic": torch.tensor(1.0)}

    with pytest.raises(RuntimeError, match="does not support prioritized replay"):
        train_learner(NoPriorities(), prioritized_buffer(), 1, 4, 0, MetricAccumulator())


# --------------------------------------------------------------------------------------------------
# Config


def test_prioritized_setting_from_the_command_line_and_json_round_trip():
    base = get_preset("dqn/cartpole")
    assert base.train.prioritized is None
    on = apply_overrides(base, ["train.prioritized=true", "train.prioritized.alpha=0.7"])
    assert on.train.prioritized == PrioritizedConfig(alpha=0.7, beta_steps=0)  # 0: beta over the whole run
    assert from_dict(RunConfig, to_dict(on)) == on
    partial = apply_overrides(base, ['prioritized={"beta_end": 0.9}'])
    assert partial.train.prioritized == PrioritizedConfig(beta_end=0.9, beta_steps=0)
    assert apply_overrides(base, ["train.prioritized=false"]).train.prioritized is None
    # once on (a preset's choice or an earlier override), the section can still be switched off or replaced
    assert apply_overrides(on, ["train.prioritized=null"]).train.prioritized is None
    assert apply_overrides(on, ["train.prioritized=false"]).train.prioritized is None
    assert apply_overrides(on, ['train.prioritized={"alpha": 0.5}']).train.prioritized.alpha == 0.5
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(on, ["train.nothing.alpha=1"])
    with pytest.raises((ConfigError, TypeError, ValueError)):
        apply_overrides(base, ['train.prioritized={"gamma": 1}'])
    assert EpisodicConfig(prioritized=True).prioritized == PrioritizedConfig(beta_steps=0)
    assert beta_horizon(PrioritizedConfig(beta_steps=0), 5_000) == 5_000
    assert beta_horizon(PrioritizedConfig(beta_steps=300), 5_000) == 300
    assert beta_horizon(PrioritizedConfig(beta_steps=0), 9_000, saved=5_000) == 5_000


# --------------------------------------------------------------------------------------------------
# Whole runs (tiny DQN on CartPole)

TINY_DQN = [
    "agent.hidden=[16,16]",
    "agent.update_after_steps=50",
    "train.total_steps=300",
    "train.batch_size=32",
    "train.eval_every=0",
    "train.eval_episodes=1",
    "train.log_every=100",
    "train.checkpoint_every=0",
    "train.progress=false",
    "train.seed=3",
]


def params_digest(state: dict, names: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in names:
        for key, value in sorted(state[name].items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def final(run_dir):
    return load_checkpoint(Checkpointer(run_dir).latest())


def test_uniform_training_is_unchanged_bit_for_bit(tmp_path):
    """``prioritized=None`` trains exactly as the suite did before prioritized replay was wired in: the
    digest of the parameters after this tiny run was recorded on the code without it (x86-64 CPU,
    torch 2.13, one thread). The same run with prioritized replay differs (the check can fail). Float
    results' last bits follow the CPU's kernels, so there is one digest per machine it was recorded on
    (the first VM; the VM of 2026-12-06, where the code of the first digest, 1ef855e, gives the second;
    see tests/test_pinned_runs.py)."""
    cfg = apply_overrides(get_preset("dqn/cartpole"), TINY_DQN)
    train(cfg, tmp_path / "uniform")
    state = final(tmp_path / "uniform")
    assert state["agent"]["updates"] == 251
    assert "sampler" not in state["buffer"] and "beta_steps" not in state["extra"]
    recorded = (
        "cb40d452a1ecb1424006f30bf3de5e5ff7ec26b91e644cd0012f63c76a32bd6b",
        "1337e8ae319ba89a7a9fc333e7b6fbc68f44e130ebfdaf2db6dcb46cb4287776",
    )
    assert params_digest(state["agent"], ("q_network", "q_target")) in recorded
    train(apply_overrides(cfg, ["train.prioritized=true"]), tmp_path / "per")
    assert params_digest(final(tmp_path / "per")["agent"], ("q_network", "q_target")) not in recorded


def test_prioritized_run_changes_priorities_and_anneals_beta_over_the_run(tmp_path):
    cfg = apply_overrides(get_preset("dqn/cartpole"), [*TINY_DQN, "train.prioritized=true"])
    train(cfg, tmp_path / "run")
    state = final(tmp_path / "run")
    assert state["extra"]["beta_steps"] == 300  # beta_steps 0: the run's total_steps
    priorities = state["buffer"]["sampler"]["priorities"]
    assert priorities.shape == (300,)
    assert len(set(priorities.tolist())) > 100  # updated rows carry their own TD errors
    assert state["buffer"]["sampler"]["max_priority"] > 1.0


def test_prioritized_resume_equals_straight_run(tmp_path):
    # beta_steps fixed: the straight and split runs then share one beta schedule (with beta_steps 0 the
    # first half of the split run would anneal over its own 200 steps)
    overrides = [*TINY_DQN, "train.total_steps=400", "train.checkpoint_every=100"]
    overrides.append('train.prioritized={"beta_steps": 500}')
    straight = apply_overrides(get_preset("dqn/cartpole"), overrides)
    train(straight, tmp_path / "straight")
    train(apply_overrides(straight, ["train.total_steps=200"]), tmp_path / "split")
    resumed = apply_overrides(read_config(tmp_path / "split"), ["train.total_steps=400"])
    train(resumed, tmp_path / "split", resume=True)
    a, b = final(tmp_path / "straight"), final(tmp_path / "split")
    assert a["step"] == b["step"] == 400
    for name in ("q_network", "q_target"):
        for key, value in a["agent"][name].items():
            assert torch.equal(value, b["agent"][name][key]), f"{name}.{key} differs after resume"
    assert torch.equal(a["buffer"]["sampler"]["priorities"], b["buffer"]["sampler"]["priorities"])
    assert torch.equal(a["buffer"]["sampler"]["max_priority"], b["buffer"]["sampler"]["max_priority"])


def test_resume_keeps_the_beta_horizon_chosen_at_the_start(tmp_path):
    cfg = apply_overrides(get_preset("dqn/cartpole"), [*TINY_DQN, "train.total_steps=200", "train.prioritized=true"])
    train(cfg, tmp_path / "run")
    train(apply_overrides(read_config(tmp_path / "run"), ["train.total_steps=300"]), tmp_path / "run", resume=True)
    assert final(tmp_path / "run")["extra"]["beta_steps"] == 200


# --------------------------------------------------------------------------------------------------
# MARL: episode-level prioritized replay


def test_episode_td_error_by_hand():
    joint = torch.tensor([[[1.0], [2.0], [0.0]], [[0.0], [0.0], [5.0]]])  # [B=2, T=3, N=1]
    target = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [9.0, 9.0]], [[-1.0, -3.0], [0.0, 0.0], [0.0, 0.0]]])  # N'=2
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # episode 0: |1 - 1| + |0 - 2| over 2 steps -> 2 / sqrt(2); episode 1: |-2 - 0| over 1 step -> 2
    assert episode_td_error(joint, target, mask).tolist() == pytest.approx([2 / 2**0.5, 2.0])


def small_prey(n=2, seed=0):
    return PredatorPrey(num_envs=n, grid_size=4, n_agents=2, n_stags=1, episode_limit=5, seed=seed)


def test_marl_weights_scale_each_episodes_loss(tiny_marl_config):
    """The weighted loss is linear in the weights: sum_b L(one-hot_b) = L(uniform); a zero weight drops the
    episode; all-ones weights give the uniform loss."""
    cfg = tiny_marl_config("vdn")
    env = small_prey()
    agent = FactorizedQLearner(env.obs_spec, env.state_spec, env.action_spec, cfg, seed=0)
    loop = EpisodicConfig(total_steps=20, buffer_episodes=8, batch_episodes=3, update_after_episodes=1000)
    batch = train_episodic(env, agent, loop, eval_env=small_prey(2, 1))["buffer"].sample(3)
    uniform, stats = agent.td_loss(batch, 0)
    assert TD_ERROR not in stats
    ones, ones_stats = agent.td_loss({**batch, "weights": torch.ones(3)}, 0)
    assert torch.allclose(ones, uniform)
    assert ones_stats[TD_ERROR].shape == (3,) and bool((ones_stats[TD_ERROR] >= 0).all())
    parts = [agent.td_loss({**batch, "weights": torch.eye(3)[b]}, 0)[0] for b in range(3)]
    assert torch.allclose(sum(parts), uniform, atol=1e-6)
    half, _ = agent.td_loss({**batch, "weights": torch.tensor([0.5, 0.0, 2.0])}, 0)
    assert torch.allclose(half, 0.5 * parts[0] + 2.0 * parts[2], atol=1e-6)


@pytest.mark.parametrize("algo", ["dmix", "qmix"])
def test_marl_with_episode_prioritized_replay_runs_and_resumes(algo, tiny_marl_config):
    cfg = tiny_marl_config(algo, epsilon_anneal_steps=100)
    loop = EpisodicConfig(
        total_steps=60,
        buffer_episodes=20,
        batch_episodes=4,
        update_after_episodes=4,
        eval_every=0,
        checkpoint_every=20,
        prioritized=True,
    )
    saved = []
    env = small_prey()
    agent = FactorizedQLearner(env.obs_spec, env.state_spec, env.action_spec, cfg, seed=0)
    save = lambda step, state: saved.append(copy.deepcopy(state))  # noqa: E731 (the loop's payload is live)
    out = train_episodic(env, agent, loop, eval_env=small_prey(2, 1), save=save)
    buffer = out["buffer"]
    assert out["updates"] > 0 and buffer.sampler is not None
    priorities = buffer.sampler.tree.leaves[: len(buffer)]
    assert len(set(priorities.tolist())) > 2  # sampled episodes carry their own TD errors
    assert saved[-1]["extra"]["beta_steps"] == 60
    assert buffer.sampler.beta_at(60) == pytest.approx(1.0)
    assert torch.isfinite(out["final_eval"]["eval/mean_reward"])

    # the same run from its first checkpoint continues bit for bit
    first = next(s for s in saved if s["step"] < 60 and s["extra"]["updates"] > 0)
    env2 = small_prey()
    agent2 = FactorizedQLearner(env2.obs_spec, env2.state_spec, env2.action_spec, cfg, seed=0)
    out2 = train_episodic(env2, agent2, loop, eval_env=small_prey(2, 1), resume=first)
    assert out2["updates"] == out["updates"]
    for part in ("net", "mixer"):
        for key, value in agent.state_dict()[part].items():
            assert torch.equal(value, agent2.state_dict()[part][key]), f"{part}.{key}"
    assert torch.equal(priorities, out2["buffer"].sampler.tree.leaves[: len(buffer)])


def test_off_policy_config_rejects_unknown_prioritized_values():
    with pytest.raises(ValueError, match="prioritized"):
        OffPolicyConfig(prioritized="sometimes")
    assert OffPolicyConfig(prioritized={"alpha": 0.3}).prioritized.alpha == 0.3
