"""QCOMBO's losses on a 3-row batch of 2 lights, every value computed by hand; detached targets; the consistency
term's gradients reach both networks; the network wrapper uses target nets and the online greedy action."""

import copy

import pytest
import torch

from agents.traffic.qcombo_losses import (
    consistency_loss,
    global_td_loss,
    joint_action_index,
    local_td_loss,
    qcombo_loss,
    qcombo_loss_from_nets,
)

GAMMA = 0.5


def batch():
    """3 transitions, 2 lights; row 2 is terminal."""
    q_local = torch.tensor(
        [[[1.0, 2.0], [0.0, 3.0]], [[4.0, 1.0], [2.0, 2.0]], [[0.0, -1.0], [5.0, 1.0]]], requires_grad=True
    )
    actions = torch.tensor([[1, 0], [0, 1], [1, 1]])
    rewards = torch.tensor([[1.0, 0.0], [0.0, -1.0], [2.0, 1.0]])
    next_q_local = torch.tensor(
        [[[0.5, 1.0], [2.0, 0.0]], [[0.0, 0.0], [1.0, 3.0]], [[4.0, 2.0], [-1.0, -2.0]]], requires_grad=True
    )
    q_global = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, 6.0, 7.0, 8.0], [-1.0, 0.0, 1.0, 2.0]], requires_grad=True)
    reward = torch.tensor([1.0, 0.0, 3.0])
    next_q_global = torch.tensor(
        [[4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0], [0.0, 10.0, 0.0, 0.0]], requires_grad=True
    )
    next_greedy = torch.tensor([[0, 0], [1, 1], [0, 1]])
    terminated = torch.tensor([False, False, True])
    return q_local, actions, rewards, next_q_local, q_global, reward, next_q_global, next_greedy, terminated


def test_joint_action_index_puts_light_0_in_the_most_significant_bit():
    assert joint_action_index(torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])).tolist() == [2, 1, 3, 0]
    assert joint_action_index(torch.tensor([[1, 0, 1], [0, 0, 1]])).tolist() == [5, 1]


def test_local_td_loss_by_hand():
    q_local, actions, rewards, next_q_local, *_, terminated = batch()
    loss = local_td_loss(q_local, actions, rewards, next_q_local, terminated, GAMMA)
    # targets: light 0: 1 + .5*1, 0 + .5*0, 2 (terminal); light 1: 0 + .5*2, -1 + .5*3, 1 (terminal)
    # taken:   light 0: 2, 4, -1;                      light 1: 0, 2, 1
    # light 0: (.25 + 16 + 9) / 3; light 1: (1 + 2.25 + 0) / 3; summed over lights
    assert loss.item() == pytest.approx((25.25 + 3.25) / 3)
    loss.backward()
    assert next_q_local.grad is None  # the target is detached
    assert q_local.grad[1, 0, 0].item() == pytest.approx(2 * (4 - 0) / 3)
    assert q_local.grad[1, 0, 1].item() == 0.0  # an action not taken


def test_global_td_loss_by_hand():
    _, actions, _, _, q_global, reward, next_q_global, next_greedy, terminated = batch()
    loss = global_td_loss(q_global, actions, reward, next_q_global, next_greedy, terminated, GAMMA)
    # joint actions 2, 1, 3 -> taken 2, 6, 2; greedy next joint 0, 3, 1 -> bootstrap 4, 2, (10 ignored: terminal)
    # targets 1 + .5*4 = 3, 0 + .5*2 = 1, 3 -> errors -1, 5, -1
    assert loss.item() == pytest.approx((1 + 25 + 1) / 3)
    loss.backward()
    assert next_q_global.grad is None
    assert q_global.grad[1].tolist() == pytest.approx([0, 2 * 5 / 3, 0, 0])


def test_consistency_loss_by_hand_and_gradients_reach_both_networks():
    q_local, actions, _, _, q_global, *_ = batch()
    loss = consistency_loss(q_local, q_global, actions)
    # local means (2 + 0)/2 = 1, (4 + 2)/2 = 3, (-1 + 1)/2 = 0 against global 2, 6, 2
    assert loss.item() == pytest.approx((1 + 9 + 4) / 3)
    loss.backward()
    assert q_global.grad[0, 2].item() == pytest.approx(2 * (2 - 1) / 3)
    assert q_global.grad[2, 3].item() == pytest.approx(2 * (2 - 0) / 3)
    assert q_local.grad[0, 0, 1].item() == pytest.approx(2 * (1 - 2) / 3 * 0.5)
    assert q_local.grad[0, 0, 0].item() == 0.0


def test_total_is_local_plus_global_plus_beta_consistency():
    q_local, actions, rewards, next_q_local, q_global, reward, next_q_global, next_greedy, terminated = batch()
    out = qcombo_loss(
        q_local, q_global, actions, rewards, reward, next_q_local, next_q_global, next_greedy, terminated, GAMMA, 1.5
    )
    assert out.local.item() == pytest.approx(9.5)
    assert out.global_.item() == pytest.approx(9.0)
    assert out.consistency.item() == pytest.approx(14 / 3)
    assert out.total.item() == pytest.approx(9.5 + 9.0 + 1.5 * 14 / 3)


def test_loss_from_nets_uses_target_nets_and_the_online_greedy_action():
    torch.manual_seed(0)
    n, d, s = 2, 5, 7
    local_net = torch.nn.Linear(d, 2)
    global_net = torch.nn.Linear(s, 2**n)
    local_target, global_target = copy.deepcopy(local_net), copy.deepcopy(global_net)
    with torch.no_grad():  # targets that differ from the online nets
        for p in (*local_target.parameters(), *global_target.parameters()):
            p.add_(0.3)
    b = {
        "obs": torch.randn(3, n, d),
        "state": torch.randn(3, s),
        "actions": torch.tensor([[1, 0], [0, 1], [1, 1]]),
        "agent_reward": torch.randn(3, n),
        "reward": torch.randn(3),
        "next_obs": torch.randn(3, n, d),
        "next_state": torch.randn(3, s),
        "terminated": torch.tensor([False, True, False]),
    }
    out = qcombo_loss_from_nets(local_net, global_net, local_target, global_target, b, gamma=0.9, beta=1.7)
    with torch.no_grad():
        expected = qcombo_loss(
            local_net(b["obs"]),
            global_net(b["state"]),
            b["actions"],
            b["agent_reward"],
            b["reward"],
            local_target(b["next_obs"]),
            global_target(b["next_state"]),
            local_net(b["next_obs"]).argmax(-1),
            b["terminated"],
            0.9,
            1.7,
        )
    assert out.total.item() == pytest.approx(expected.total.item())
    out.total.backward()
    online = (*local_net.parameters(), *global_net.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in online)
    assert all(p.grad is None for p in (*local_target.parameters(), *global_target.parameters()))
