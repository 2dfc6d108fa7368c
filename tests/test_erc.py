"""ERC (agents/erc.py): the regularizer by hand, weight 0 = SAC / DQN bit for bit, cadence, tabular theory."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from agents import run_training as train
from agents.dqn import DQN, DQNConfig
from agents.engine.checkpoint import Checkpointer, load_checkpoint
from agents.engine.config import apply_overrides
from agents.engine.run import read_config
from agents.erc import ERC, ERCDQN, PRESETS, ERCConfig, ERCDQNConfig, erc_regularizer
from agents.sac import SAC, SACConfig
from envs.base import BoxSpec, DiscreteSpec

OBS, ACT = BoxSpec((3,)), BoxSpec((2,))
BETA, CLAMP = 0.005, 0.01


def batch(n: int = 3, discrete: bool = False, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(n, 3, generator=g),
        "action": torch.randint(0, 2, (n,), generator=g) if discrete else torch.rand(n, 2, generator=g) * 2 - 1,
        "reward": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, 3, generator=g),
        "terminated": torch.rand(n, generator=g) < 0.2,
    }


# ---- the regularizer on 3-row batches --------------------------------------------------


def test_regularizer_value_by_hand_per_sample_clamp_per_critic():
    # critic 0: delta = [0, 1, 2] -> e = [0, 1, 4], mean 5/3, beta (e - mean)^2 = [1/72, 1/450, 49/1800]:
    #   rows 0 and 2 exceed c = 0.01 and count as 0.01 each -> R_0 = (0.02 + 0.02/9) / 3 = 0.2/27.
    # critic 1: delta = [0.5, 1, 1.5] -> e = [1/4, 1, 9/4], mean 7/6, (e - mean)^2 = [121, 4, 169] / 144,
    #   none clamped -> R_1 = 0.005 * 294/144 / 3. Its own mean, not critic 0's.
    td = torch.tensor([[0.0, 1.0, 2.0], [0.5, 1.0, 1.5]])
    reg, clamped = erc_regularizer(td, BETA, CLAMP)
    assert torch.allclose(reg, torch.tensor([0.2 / 27, 0.005 * 294 / 144 / 3]), rtol=1e-6, atol=0)
    assert clamped.tolist() == [[True, False, True], [False, False, False]]
    # a 4-sample example: e = [0, 0.5, 1, 4.5] -> 0.0065625
    reg4, _ = erc_regularizer(torch.tensor([[0.0, 0.5, 1.0, 4.5]]).sqrt(), BETA, CLAMP)
    assert torch.allclose(reg4, torch.tensor([0.0065625]), rtol=1e-6, atol=0)


def test_regularizer_gradient_by_hand_and_mean_detached():
    # dR/dQ_i = 4 beta / B (e_i - mean e) delta_i where unclamped, exactly 0 where clamped; a mean that
    # carried gradient would leak into the clamped rows 0 and 2 (delta_2 != 0).
    td = torch.tensor([[0.0, 1.0, 2.0], [0.5, 1.0, 1.5]], requires_grad=True)
    erc_regularizer(td, BETA, CLAMP)[0].sum().backward()
    e = td.detach().pow(2)
    expected = 4 * BETA / 3 * (e - e.mean(1, keepdim=True)) * td.detach()
    expected[0, 0] = expected[0, 2] = 0.0
    assert torch.allclose(td.grad, expected, rtol=1e-5, atol=1e-9)
    assert td.grad[0, 0] == 0 and td.grad[0, 2] == 0
    assert abs(td.grad[0, 1].item() - (-0.04 / 9)) < 1e-7  # 4 beta/3 * (1 - 5/3) * 1


def test_regularizer_without_clamp_is_dqn_form():
    td = torch.tensor([[0.0, 1.0, 2.0]])
    reg, clamped = erc_regularizer(td, 5e-4, None)
    e = torch.tensor([0.0, 1.0, 4.0])
    assert torch.allclose(reg, 5e-4 * (e - e.mean()).pow(2).mean().reshape(1))
    assert not clamped.any()


def test_sac_erc_critic_loss_by_hand():
    # SAC's loss carries 1/2: 1/2 sum_k [mean e_k + R_k]; gradient wrt q = 1/2 (2 delta / B + dR/dq)
    agent = make_erc()
    target = torch.tensor([0.3, -0.2, 1.0])
    q = (target + torch.tensor([[0.0, 1.0, 2.0], [0.5, 1.0, 1.5]])).requires_grad_()
    loss, metrics = agent.critic_loss(q, target, batch())
    td = (q - target).detach()
    reg = torch.tensor([0.2 / 27, 0.005 * 294 / 144 / 3])
    assert torch.allclose(loss, 0.5 * (td.pow(2).mean(1) + reg).sum(), rtol=1e-6)
    loss.backward()
    e = td.pow(2)
    d_reg = 4 * BETA / 3 * (e - e.mean(1, keepdim=True)) * td
    d_reg[0, 0] = d_reg[0, 2] = 0.0
    assert torch.allclose(q.grad, 0.5 * (2 * td / 3 + d_reg), rtol=1e-5, atol=1e-9)
    assert torch.allclose(metrics["train/erc_clamped_fraction"], torch.tensor(2 / 6))
    assert torch.allclose(metrics["train/erc_grad_ratio_q"], d_reg.norm() / (2 * td / 3).norm())
    assert torch.allclose(metrics["train/td_sq_mean"], e.mean(1).mean())
    assert torch.allclose(metrics["train/td_sq_std"], e.std(1).mean())
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())


def test_parameter_gradient_ratio_diagnostic():
    agent = make_erc(regularizer_weight=50.0, regularizer_clamp=None, diagnostics_every=2)
    b = batch(8)
    target = agent.critic_target_value(b)
    q = agent.critic(b["obs"], b["action"])
    agent.updates = 2
    _, metrics = agent.critic_loss(q, target, b)
    terms = (0.5 * (q - target).pow(2).mean(1).sum(), 0.5 * erc_regularizer(q - target, 50.0, None)[0].sum())
    params = list(agent.critic.parameters())
    norms = [torch.cat([g.flatten() for g in torch.autograd.grad(t, params, retain_graph=True)]).norm() for t in terms]
    assert torch.allclose(metrics["train/erc_grad_ratio"], norms[1] / norms[0], rtol=1e-4)
    agent.updates = 3  # only every diagnostics_every updates
    assert "train/erc_grad_ratio" not in agent.critic_loss(q, target, b)[1]


def test_dqn_erc_critic_loss_by_hand():
    agent = ERCDQN(OBS, DiscreteSpec(2), ERCDQNConfig(hidden=(8,)))
    target = torch.tensor([0.3, -0.2, 1.0])
    q = (target + torch.tensor([0.0, 1.0, 2.0])).requires_grad_()
    loss, _ = agent.critic_loss(q, target, batch(discrete=True))
    e = torch.tensor([0.0, 1.0, 4.0])
    assert torch.allclose(loss, e.mean() + 5e-4 * (e - e.mean()).pow(2).mean())


# ---- weight 0 is the base algorithm, bit for bit -----------------------------------


def make_erc(**kw) -> ERC:
    torch.manual_seed(0)
    return ERC(OBS, ACT, ERCConfig(hidden=(8, 8), **kw))


def run_updates(agent, batches, seed=10):
    for i, b in enumerate(batches):
        torch.manual_seed(seed + i)  # the actor samples from the global RNG: same draws for both agents
        agent.update(b, step=i)


def sac_tensors(agent) -> list[torch.Tensor]:
    return [
        *agent.actor.parameters(),
        *agent.critic.parameters(),
        *agent.critic_target.parameters(),
        agent.log_temperature,
    ]


@pytest.mark.parametrize("delay", [1, 2])
def test_weight_zero_equals_sac_bit_for_bit(delay):
    cadence = {"policy_delay": delay, "target_every": delay}
    batches = [batch(16, seed=s) for s in range(6)]
    torch.manual_seed(0)
    sac = SAC(OBS, ACT, SACConfig(hidden=(8, 8), **cadence))
    erc = make_erc(regularizer_weight=0.0, diagnostics_every=1, **cadence)  # diagnostics every step too
    strong = make_erc(regularizer_weight=5.0, regularizer_clamp=None, **cadence)
    for agent in (sac, erc, strong):
        run_updates(agent, batches)
    assert all(torch.equal(a, b) for a, b in zip(sac_tensors(sac), sac_tensors(erc)))
    # ... and the comparison can fail: a non-zero weight moves the critics
    assert not all(torch.equal(a, b) for a, b in zip(sac.critic.parameters(), strong.critic.parameters()))


def test_weight_zero_equals_dqn_bit_for_bit():
    batches = [batch(16, discrete=True, seed=s) for s in range(6)]
    torch.manual_seed(0)
    base = DQN(OBS, DiscreteSpec(2), DQNConfig(hidden=(8, 8)))
    torch.manual_seed(0)
    erc = ERCDQN(OBS, DiscreteSpec(2), ERCDQNConfig(hidden=(8, 8), regularizer_weight=0.0, diagnostics_every=1))
    torch.manual_seed(0)
    strong = ERCDQN(OBS, DiscreteSpec(2), ERCDQNConfig(hidden=(8, 8), regularizer_weight=1.0))
    for agent in (base, erc, strong):
        for i, b in enumerate(batches):
            agent.update(b, step=i)
    tensors = lambda a: [*a.q_network.parameters(), *a.q_target.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(tensors(base), tensors(erc)))
    assert not all(torch.equal(a, b) for a, b in zip(tensors(base), tensors(strong)))


# ---- the authors' delayed cadence from the preset -----------------------------------


def test_preset_cadence_actor_temperature_target_on_even_updates_only():
    cfg = PRESETS["erc/dmc-cartpole-swingup"].agent
    assert (cfg.policy_delay, cfg.target_every, cfg.regularizer_weight, cfg.regularizer_clamp) == (2, 2, BETA, CLAMP)
    assert PRESETS["erc-base/dmc-cartpole-swingup"].agent.regularizer_weight == 0.0
    torch.manual_seed(0)
    agent = ERC(OBS, ACT, ERCConfig(**{**cfg.__dict__, "hidden": (8, 8)}))
    for update in range(1, 5):
        before = copy.deepcopy(agent.state_dict())
        metrics = agent.update(batch(8, seed=update), step=update)
        after = agent.state_dict()
        even = update % 2 == 0
        assert unchanged(before, after, "actor") != even and unchanged(before, after, "critic_target") != even
        assert torch.equal(before["log_temperature"], after["log_temperature"]) != even
        assert ("loss/actor" in metrics) == even
        assert not unchanged(before, after, "critic")  # the critic steps every update


def unchanged(before: dict, after: dict, key: str) -> bool:
    return all(torch.equal(v, after[key][k]) for k, v in before[key].items())


# ---- tabular eigensubspace check ------------------------------------------------------


def test_tabular_error_collapses_onto_constant_direction_faster_with_erc():
    rng = np.random.default_rng(0)
    n, gamma, eta = 50, 0.99, 0.1
    transition = np.zeros((n, n))
    for s in range(n):
        transition[s, rng.choice(n, 3, replace=False)] = rng.dirichlet(np.ones(3))
    reward = rng.random(n)
    q_true = np.linalg.solve(np.eye(n) - gamma * transition, reward)
    q0 = rng.standard_normal(n)

    def run(beta: float, iterations: int) -> dict:
        q, out = q0.copy(), {}
        for k in range(1, iterations + 1):
            error = q - q_true
            q = q + eta * (reward + gamma * transition @ q - q) - eta * beta * (error - error.mean())
            if k in (10, 100, iterations):
                psi = q - q_true
                out[k] = (psi.std(), abs(psi.sum()) / (np.linalg.norm(psi) * np.sqrt(n)), np.linalg.norm(psi))
        return out

    td, erc = run(0.0, 20_000), run(0.5, 20_000)
    assert td[100][1] > 0.999 and td[100][2] > 100  # TD: aligned with 1 long before the error is small
    assert erc[10][0] < td[10][0] and erc[100][0] < td[100][0]  # ERC collapses faster
    assert td[100][0] < td[10][0]
    assert td[20_000][2] < 1e-3 and erc[20_000][2] < 1e-3  # the same fixed point: Q^pi


# ---- wiring: the run directory's TensorBoard events carry the diagnostics ------------------------


def test_train_writes_erc_diagnostics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = apply_overrides(
        PRESETS["erc/dmc-cartpole-swingup"],
        [
            "env.id=Pendulum-v1",
            "agent.gamma=0.9",  # Pendulum episodes are 200 steps: counted Q-bias pairs need gamma^H <= 0.01 after them
            "agent.hidden=[16,16]",
            "total_steps=400",
            "update_after_steps=200",
            "batch_size=32",
            "eval_every=400",
            "eval_episodes=2",
            "log_every=200",
            "diagnostics_every=10",
            "progress=false",
        ],
    )
    train(cfg, tmp_path / "run")
    tags = set(EventAccumulator(str(tmp_path / "run")).Reload().Tags()["scalars"])
    wanted = {"train/td_sq_mean", "train/td_sq_std", "train/erc_clamped_fraction", "train/erc_grad_ratio"}
    wanted |= {"train/erc_grad_ratio_q", "train/erc_regularizer", "train/td_mean", "train/td_std"}
    assert wanted | {"eval/q_bias", "eval/q_bias_std"} <= tags


def test_erc_dqn_resume_and_bias_evaluations_leave_training_unchanged(tmp_path):
    # the Q-bias rollouts at each evaluation draw from a forked RNG: they must not perturb training
    tiny = ["agent.hidden=[16]", "total_steps=400", "update_after_steps=100", "batch_size=32", "eval_every=100"]
    tiny += ["eval_episodes=2", "checkpoint_every=200", "progress=false", "diagnostics_every=5"]
    straight = apply_overrides(PRESETS["erc-dqn/cartpole"], tiny)
    train(straight, tmp_path / "straight")
    train(apply_overrides(straight, ["total_steps=200"]), tmp_path / "split")
    train(apply_overrides(read_config(tmp_path / "split"), ["total_steps=400"]), tmp_path / "split", resume=True)
    train(apply_overrides(straight, ["eval_every=0"]), tmp_path / "no_evaluations")
    names = ("straight", "split", "no_evaluations")
    a, b, c = (load_checkpoint(Checkpointer(tmp_path / name).latest()) for name in names)
    for key, value in a["agent"]["q_network"].items():
        assert torch.equal(value, b["agent"]["q_network"][key])
        assert torch.equal(value, c["agent"]["q_network"][key])


def test_erc_base_preset_trains_exactly_like_sac(tmp_path):
    # end to end through the loop, evaluations (with their Q-bias rollouts) included
    tiny = ["env.id=Pendulum-v1", "agent.hidden=[16,16]", "total_steps=300", "update_after_steps=100", "batch_size=32"]
    tiny += ["eval_every=100", "eval_episodes=2", "checkpoint_every=300", "progress=false", "agent.gamma=0.9"]
    base = apply_overrides(PRESETS["erc-base/dmc-cartpole-swingup"], tiny)
    sac_agent = SACConfig(**{f.name: getattr(base.agent, f.name) for f in dataclasses.fields(SACConfig)})
    train(base, tmp_path / "erc")
    train(dataclasses.replace(base, algo="sac", agent=sac_agent), tmp_path / "sac")
    a, b = (load_checkpoint(Checkpointer(tmp_path / name).latest())["agent"] for name in ("erc", "sac"))
    for name in ("actor", "critic", "critic_target"):
        assert all(torch.equal(value, b[name][key]) for key, value in a[name].items())
