import copy
import io

import torch
from torch import nn

from agents.engine.nets import QEnsemble
from agents.sac import SAC, SACConfig
from envs.base import BoxSpec

OBS, ACT = BoxSpec((3,)), BoxSpec((2,))


def make_agent(**kw) -> SAC:
    torch.manual_seed(0)
    return SAC(OBS, ACT, SACConfig(hidden=(8, 8), **kw))


def batch(n: int = 3) -> dict:
    g = torch.Generator().manual_seed(1)
    return {
        "obs": torch.randn(n, 3, generator=g),
        "action": torch.rand(n, 2, generator=g) * 2 - 1,
        "reward": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, 3, generator=g),
        "terminated": torch.tensor([False, True, False][:n]),
    }


def test_q_ensemble_members_equal_independent_mlps():
    torch.manual_seed(0)
    ens = QEnsemble(3, 2, (8, 8), members=2)
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    out = ens(obs, act)
    for k in range(2):
        layers = []
        for layer in [*ens.layers, ens.head]:
            lin = nn.Linear(layer.weight.shape[1], layer.weight.shape[2])
            lin.weight.data = layer.weight.data[k].T.clone()
            lin.bias.data = layer.bias.data[k, 0].clone()
            layers += [lin, nn.ReLU()]
        ref = nn.Sequential(*layers[:-1])(torch.cat([obs, act], -1)).squeeze(-1)
        assert torch.allclose(out[k], ref, atol=1e-6)


def test_compiled_layers_add_the_bias_apart_and_compute_the_same():
    # Traced, the batched layers multiply and add the bias apart (inductor fuses the add into the next
    # pass instead of addmm's bias copy); eager keeps the one fused call. Same function either way.
    from agents.engine.nets import SquashedGaussianActor

    graphs = []

    def recording(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    torch.manual_seed(0)
    critic, actor = QEnsemble(3, 2, (8, 8), members=2), SquashedGaussianActor(3, 2, (8, 8))
    obs, act, noise = torch.randn(5, 3), torch.randn(5, 2), torch.randn(5, 2)
    for module, args in ((critic, (obs, act)), (actor, (obs, noise))):
        eager = module(*args)
        traced = torch.compile(module, backend=recording, fullgraph=True)(*args)
        torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-6)
    called = [str(node.target) for graph in graphs for node in graph.graph.nodes if node.op == "call_function"]
    assert not [t for t in called if "addmm" in t or "linear" in t], called
    assert any("bmm" in t for t in called) and any("matmul" in t for t in called)


def test_critic_target_and_loss_by_hand():
    agent = make_agent()
    b = batch()
    torch.manual_seed(5)
    y = agent.critic_target_value(b)
    torch.manual_seed(5)
    next_a, next_logp = agent.actor(b["next_obs"])
    qbar = agent.critic_target(b["next_obs"], next_a)
    alpha = agent.log_temperature.exp().item()
    for i in range(3):
        soft = min(qbar[0, i].item(), qbar[1, i].item()) - alpha * next_logp[i].item()
        done = float(b["terminated"][i])
        expected = b["reward"][i].item() + 0.99 * (1 - done) * soft
        assert abs(y[i].item() - expected) < 1e-5
    q = agent.critic(b["obs"], b["action"])
    loss, _ = agent.critic_loss(q, y, b)
    by_hand = 0.5 * sum(((q[k] - y) ** 2).mean() for k in range(2))
    assert torch.allclose(loss, by_hand)


def test_actor_step_sends_no_gradient_to_critic():
    agent = make_agent()
    agent.update_critic(batch())
    critic_before = copy.deepcopy(agent.critic.state_dict())
    agent.critic_optimizer.zero_grad(set_to_none=True)
    agent.update_actor_and_temperature(batch())
    assert all(p.grad is None for p in agent.critic.parameters())
    for k, v in agent.critic.state_dict().items():
        assert torch.equal(v, critic_before[k])


def test_policy_delay_and_target_cadence():
    agent = make_agent(policy_delay=2, target_every=3)
    actor0 = copy.deepcopy(agent.actor.state_dict())
    target0 = copy.deepcopy(agent.critic_target.state_dict())
    m1 = agent.update(batch(), step=0)
    assert "loss/actor" not in m1
    assert all(torch.equal(v, actor0[k]) for k, v in agent.actor.state_dict().items())
    m2 = agent.update(batch(), step=0)
    assert "loss/actor" in m2
    assert not all(torch.equal(v, actor0[k]) for k, v in agent.actor.state_dict().items())
    assert all(torch.equal(v, target0[k]) for k, v in agent.critic_target.state_dict().items())
    agent.update(batch(), step=0)  # third critic step: Polyak
    assert not all(torch.equal(v, target0[k]) for k, v in agent.critic_target.state_dict().items())


def test_polyak_moves_target_by_tau():
    agent = make_agent(polyak=0.25)
    before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(batch(), step=0)
    for t, o, b in zip(agent.critic_target.parameters(), agent.critic.parameters(), before):
        assert torch.allclose(t, 0.75 * b + 0.25 * o, atol=1e-7)


def test_fixed_temperature_is_not_learned():
    agent = make_agent(temperature="fixed", initial_temperature=0.3)
    metrics = agent.update(batch(), step=0)
    assert "loss/temperature" not in metrics
    assert abs(agent.temperature.item() - 0.3) < 1e-7


def test_save_load_act_identical():
    agent = make_agent()
    for _ in range(3):
        agent.update(batch(), step=0)
    other = SAC(OBS, ACT, SACConfig(hidden=(8, 8)))
    saved = io.BytesIO()
    torch.save(agent.state_dict(), saved)  # through bytes, like a checkpoint: no shared tensors
    saved.seek(0)
    other.load_state_dict(torch.load(saved, weights_only=True))
    obs = torch.randn(4, 3)
    assert torch.equal(agent.act(obs, step=0, explore=False)[0], other.act(obs, step=0, explore=False)[0])
    torch.manual_seed(3)
    a = agent.act(obs, step=0)[0]
    torch.manual_seed(3)
    assert torch.equal(a, other.act(obs, step=0)[0])
    # optimizers continue identically too
    b = batch()
    torch.manual_seed(4)
    agent.update(b, step=0)
    torch.manual_seed(4)
    other.update(b, step=0)
    for p, q in zip(agent.actor.parameters(), other.actor.parameters()):
        assert torch.equal(p, q)


def test_actions_in_canonical_range_and_log_prob_matches_density():
    agent = make_agent()
    obs = torch.randn(2000, 3)
    action, _ = agent.act(obs, step=0)
    assert action.abs().max() <= 1.0
    # log prob of the squashed Gaussian equals the change-of-variables formula computed directly
    torch.manual_seed(0)
    a, logp = agent.actor(obs[:5])
    mean, log_std = agent.actor.distribution_params(obs[:5])
    u = torch.atanh(a.clamp(-1 + 1e-6, 1 - 1e-6))
    normal = torch.distributions.Normal(mean, log_std.exp())
    direct = (normal.log_prob(u) - torch.log(1 - a.pow(2) + 1e-12)).sum(-1)
    assert torch.allclose(logp, direct, atol=1e-2)
