"""The QCOMBO / ERNIE-QCOMBO learner (agents/traffic/qcombo.py): its update is the pure losses of
agents/traffic/qcombo_losses.py (checked by hand in tests/test_qcombo_losses.py) plus lambda N R, assembled on a 3-row
batch and replayed step by step; each term's gradient reaches only its own network; ERNIE weight 0 is QCOMBO bit for
bit; save -> load -> act is identical; the global state read from the observations is the env's."""

import copy
import dataclasses
import math

import pytest
import torch

from agents.robustness.robust import ernie_penalty
from agents.traffic.presets import ERNIE_QCOMBO, QCOMBO
from agents.traffic.qcombo import FEATURES, Qcombo, QcomboConfig, global_state
from agents.traffic.qcombo_losses import consistency_loss, global_td_loss, local_td_loss, qcombo_loss
from envs.base import BoxSpec, DiscreteSpec

N = 2  # lights
D = FEATURES + 1 + N
OBS, ACT = BoxSpec((N, D)), DiscreteSpec(2, (N,))
SMALL = QcomboConfig(local_hidden=(8,), global_hidden=(8,), reward_scale=0.5, max_grad_norm=0.0, lr=1e-2)


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """3 transitions of 2 lights (one-hot ids in place); row 2 is terminal."""
    g = torch.Generator().manual_seed(seed)

    def obs():
        o = torch.rand(3, N, D, generator=g)
        o[..., FEATURES + 1 :] = torch.eye(N)
        return o

    return {
        "obs": obs(),
        "action": torch.tensor([[1, 0], [0, 1], [1, 1]]),
        "reward": torch.tensor([1.0, -2.0, 0.5]),
        "agent_reward": torch.tensor([[0.5, 0.5], [-1.0, -1.0], [0.0, 0.5]]),
        "next_obs": obs(),
        "terminated": torch.tensor([False, False, True]),
    }


def learner(config: QcomboConfig = SMALL, seed: int = 0) -> Qcombo:
    torch.manual_seed(seed)
    return Qcombo(OBS, ACT, config, seed=seed)


def by_hand(agent: Qcombo, b: dict, generator_state: torch.Tensor) -> torch.Tensor:
    """The loss assembled from the pure functions: L_ind + L_glob + beta L_cons + lambda N R."""
    cfg, s = agent.config, agent.config.reward_scale
    q_local = agent.local_net(b["obs"])
    q_global = agent.global_net(global_state(b["obs"], N))
    with torch.no_grad():
        next_greedy = agent.local_net(b["next_obs"]).argmax(-1)
        next_local = agent.local_target(b["next_obs"])
        next_global = agent.global_target(global_state(b["next_obs"], N))
    local = local_td_loss(q_local, b["action"], b["agent_reward"] * s, next_local, b["terminated"], cfg.gamma)
    glob = global_td_loss(q_global, b["action"], b["reward"] * s, next_global, next_greedy, b["terminated"], cfg.gamma)
    total = local + glob + cfg.beta * consistency_loss(q_local, q_global, b["action"])
    if cfg.ernie_weight > 0:
        g = torch.Generator().manual_seed(0)
        g.set_state(generator_state)
        mask = torch.zeros(D)
        mask[: FEATURES + 1] = 1
        penalty, _ = ernie_penalty(
            agent.local_net, b["obs"], radius=cfg.ernie_radius, steps=cfg.ernie_steps, form=cfg.ernie_form,
            init_std=cfg.ernie_init_std, generator=g, mask=mask,
        )  # fmt: skip
        total = total + cfg.ernie_weight * N * penalty
    return total


@pytest.mark.parametrize("weight", [0.0, 0.7])
def test_update_is_the_hand_assembled_loss_and_its_adam_step(weight):
    agent = learner(dataclasses.replace(SMALL, ernie_weight=weight))
    replica = copy.deepcopy(agent)
    b = batch()
    state = agent.generator.get_state()
    expected = by_hand(replica, b, state)
    metrics = agent.update(b, step=0)
    assert metrics["loss/total"].item() == pytest.approx(expected.item(), rel=1e-6)
    # the learner's parameter step is the Adam step of that loss (one backward, one Adam step per net)
    for opt in (replica.local_optimizer, replica.global_optimizer):
        opt.zero_grad()
    expected.backward()
    replica.local_optimizer.step()
    replica.global_optimizer.step()
    for name in ("local_net", "global_net"):
        for p, q in zip(getattr(agent, name).parameters(), getattr(replica, name).parameters()):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    if weight > 0:
        assert metrics["loss/ernie"].item() > 0


def test_the_terms_in_the_total_by_value():
    """Total = local + global + beta consistency (+ lambda N R): a dropped term or a flipped sign changes it."""
    agent = learner(dataclasses.replace(SMALL, ernie_weight=0.7, beta=1.7))
    b = batch(1)
    loss, metrics = agent.losses(b)
    base = metrics["loss/local"] + metrics["loss/global"] + 1.7 * metrics["loss/consistency"]
    assert metrics["loss/consistency"].item() > 0 and metrics["loss/ernie"].item() > 0
    assert loss.item() == pytest.approx((base + 0.7 * metrics["loss/ernie"]).item(), rel=1e-6)
    s = SMALL.reward_scale
    with torch.no_grad():
        plain = qcombo_loss(
            agent.local_net(b["obs"]), agent.global_net(global_state(b["obs"], N)), b["action"],
            b["agent_reward"] * s, b["reward"] * s, agent.local_target(b["next_obs"]),
            agent.global_target(global_state(b["next_obs"], N)), agent.local_net(b["next_obs"]).argmax(-1),
            b["terminated"], SMALL.gamma, 1.7,
        )  # fmt: skip
    assert base.item() == pytest.approx(plain.total.item(), rel=1e-6)


def grads(loss, agent):
    local = torch.autograd.grad(loss, list(agent.local_net.parameters()), retain_graph=True, allow_unused=True)
    glob = torch.autograd.grad(loss, list(agent.global_net.parameters()), retain_graph=True, allow_unused=True)
    size = lambda gs: sum(0.0 if g is None else g.abs().sum().item() for g in gs)  # noqa: E731
    return size(local), size(glob)


@pytest.mark.parametrize("net", ["local", "global"])
def test_each_term_sends_gradient_only_to_its_own_parameters(net):
    agent = learner(dataclasses.replace(SMALL, ernie_weight=1.0, ernie_net=net))
    b = batch(2)
    q_local = agent.local_q(b["obs"])
    q_global = agent.global_q(b["obs"])
    with torch.no_grad():
        nl, ng = agent.local_q(b["next_obs"], agent.local_target), agent.global_q(b["next_obs"], agent.global_target)
        greedy = agent.local_q(b["next_obs"]).argmax(-1)
    local = local_td_loss(q_local, b["action"], b["agent_reward"], nl, b["terminated"], 0.95)
    glob = global_td_loss(q_global, b["action"], b["reward"], ng, greedy, b["terminated"], 0.95)
    cons = consistency_loss(q_local, q_global, b["action"])
    penalty, _ = agent.ernie_penalty(b["obs"])
    lg = grads(local, agent)
    assert lg[0] > 0 and lg[1] == 0
    gg = grads(glob, agent)
    assert gg[0] == 0 and gg[1] > 0
    cg = grads(cons, agent)
    assert cg[0] > 0 and cg[1] > 0
    pg = grads(penalty, agent)
    assert (pg[0] > 0, pg[1] > 0) == ((True, False) if net == "local" else (False, True))


def test_ernie_never_perturbs_the_light_id():
    agent = learner(dataclasses.replace(SMALL, ernie_weight=1.0))
    _, delta = agent.ernie_penalty(batch()["obs"])
    assert delta[..., FEATURES + 1 :].abs().max().item() == 0.0
    assert delta[..., : FEATURES + 1].abs().max().item() > 0.0


def test_ernie_weight_0_is_qcombo_bit_for_bit():
    """The ERNIE preset's learner at weight 0 (its other ERNIE settings kept) against the QCOMBO preset's."""
    plain, ernie0 = learner(QCOMBO, seed=3), learner(dataclasses.replace(ERNIE_QCOMBO, ernie_weight=0.0), seed=3)
    for k in range(4):
        b = batch(10 + k)
        a1, _ = plain.act(b["obs"], step=k, explore=True)
        a2, _ = ernie0.act(b["obs"], step=k, explore=True)
        assert torch.equal(a1, a2)
        m1, m2 = plain.update(b, step=k), ernie0.update(b, step=k)
        assert m1.keys() == m2.keys() and all(torch.equal(m1[key], m2[key]) for key in m1)
    s1, s2 = plain.state_dict(), ernie0.state_dict()
    for name in ("local_net", "global_net", "local_target", "global_target"):
        for key, value in s1[name].items():
            assert torch.equal(value, s2[name][key]), f"{name}.{key}"
    # and weight > 0 does change the update
    ernie = learner(ERNIE_QCOMBO, seed=3)
    ernie.update(batch(10), step=0)
    fresh = learner(QCOMBO, seed=3)
    fresh.update(batch(10), step=0)
    assert not torch.equal(ernie.local_net[0].weight, fresh.local_net[0].weight)


def test_save_load_act_identical():
    agent = learner(dataclasses.replace(SMALL, ernie_weight=0.5))
    for k in range(3):
        agent.update(batch(k), step=k)
    saved = copy.deepcopy(agent.state_dict())
    other = learner(dataclasses.replace(SMALL, ernie_weight=0.5), seed=9)
    other.load_state_dict(saved)
    obs = batch(5)["obs"]
    for explore in (False, True):
        assert torch.equal(agent.act(obs, step=0, explore=explore)[0], other.act(obs, step=0, explore=explore)[0])
    assert torch.equal(agent.update(batch(6), step=4)["loss/total"], other.update(batch(6), step=4)["loss/total"])


def test_light_id_off_acts_on_any_grid_size():
    agent = learner(dataclasses.replace(SMALL, light_id=False))
    obs = torch.rand(2, 9, FEATURES + 1 + 9)  # a 3 x 3 grid's observations
    action, _ = agent.act(obs, step=0, explore=False)
    assert action.shape == (2, 9)
    with pytest.raises(ValueError, match="binary action"):
        Qcombo(OBS, DiscreteSpec(3, (N,)), SMALL)


# ---- on SUMO ----------------------------------------------------------------------------------------------------


def test_global_state_from_the_observations_is_the_envs_state():
    from envs import make_vec_env

    env = make_vec_env("traffic:grid", 1, seed=0, options={"episode_limit": 30})
    try:
        obs = env.reset(seed=0)
        for t in range(12):
            out = env.step(torch.tensor([[t % 2, 0, 1, t % 3 == 0]]))
            obs = out.obs
        assert torch.equal(global_state(obs, 4), out.info["state"])
    finally:
        env.close()


def test_traffic_env_state_dict_replays_the_running_episodes():
    """Saved mid-episode and loaded into a fresh env, the simulations continue exactly (SUMO replayed)."""
    from envs import make_vec_env

    options = {"episode_limit": 15}
    actions = [torch.randint(0, 2, (2, 4), generator=torch.Generator().manual_seed(t)) for t in range(40)]
    a = make_vec_env("traffic:grid", 2, seed=0, options=options)
    b = make_vec_env("traffic:grid", 2, seed=0, options=options)
    try:
        a.reset(seed=4)
        for t in range(20):  # one episode done, 5 steps into the second
            a.step(actions[t])
        b.load_state_dict(copy.deepcopy(a.state_dict()))
        for t in range(20, 40):  # past the next episode boundary: the seed generator came back too
            x, y = a.step(actions[t]), b.step(actions[t])
            assert torch.equal(x.obs, y.obs) and torch.equal(x.reward, y.reward)
    finally:
        a.close()
        b.close()


TINY = [
    "env.options.episode_limit=25",
    "agent.local_hidden=[8]",
    "agent.global_hidden=[8]",
    "agent.ernie_weight=0.5",
    "train.total_steps=60",
    "train.update_after_steps=10",
    "train.batch_size=8",
    "train.eval_every=0",
    "train.eval_episodes=1",
    "train.log_every=10",
    "train.checkpoint_every=30",
    "train.progress=false",
]


def test_resume_equals_straight_run(tmp_path):
    """K + resume + K = 2K on CPU: the checkpoint (at step 30, mid-episode) carries the learner, the replay, the
    collector and the simulations (replayed by the env's state_dict)."""
    from agents import get_preset
    from agents import run_training as train
    from agents.engine.checkpoint import Checkpointer, load_checkpoint
    from agents.engine.config import apply_overrides
    from agents.engine.run import read_config

    straight = apply_overrides(get_preset("ernie-qcombo/grid-2x2"), TINY)
    train(straight, tmp_path / "straight")
    half = apply_overrides(straight, ["train.total_steps=30"])
    train(half, tmp_path / "split")
    resumed = apply_overrides(read_config(tmp_path / "split"), ["train.total_steps=60"])
    train(resumed, tmp_path / "split", resume=True)
    a, b = (load_checkpoint(Checkpointer(tmp_path / d).latest()) for d in ("straight", "split"))
    assert a["step"] == b["step"] == 60
    assert a["agent"]["updates"] == b["agent"]["updates"] == 50
    for name in ("local_net", "global_net", "local_target", "global_target"):
        for key, value in a["agent"][name].items():
            assert torch.equal(value, b["agent"][name][key]), f"{name}.{key} differs after resume"
    for key, value in a["buffer"]["storage"].items():
        assert torch.equal(value, b["buffer"]["storage"][key]), key


def test_traffic_conditions_play_and_the_3x3_transfer_needs_no_light_id():
    from agents.engine.config import EnvConfig, RunConfig
    from agents.engine.loops import OffPolicyConfig
    from agents.traffic.conditions import play_traffic, transfer_blocker

    config = RunConfig(algo="qcombo", env=EnvConfig(id="traffic:grid"), train=OffPolicyConfig(), agent=SMALL)
    spec = (BoxSpec((4, FEATURES + 1 + 4)), DiscreteSpec(2, (4,)))
    with_id = Qcombo(*spec, SMALL)
    assert "light id" in transfer_blocker(with_id)
    stats = play_traffic(
        config, with_id, episodes=1, seed=0, steps=4, skip=1, noise=0.1,
        wrappers=[{"name": "malicious_lights", "p": 0.5}],
    )  # fmt: skip
    assert set(stats) >= {"reward_per_step", "mean_queue", "mean_delay", "mean_wait", "reward_per_step_std"}
    assert stats["vehicles_passed_per_hour"] >= 0
    without_id = Qcombo(*spec, dataclasses.replace(SMALL, light_id=False))
    assert transfer_blocker(without_id) is None
    stats = play_traffic(config, without_id, episodes=1, seed=0, steps=3, skip=0, options={"rows": 3, "cols": 3})
    assert math.isfinite(stats["reward_per_step"])  # it ran on 9 lights
