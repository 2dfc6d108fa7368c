"""ERNIE's robustness math (agents/robustness/robust.py): PGD projection, attack strength, the Stackelberg gradient as a
total derivative (against float64 central finite differences), the plain gradient with a frozen perturbation, the
KL contract, ERNIE-A's greedy search against brute force, the mean-field form and the evaluation attack."""

import itertools
import math

import pytest
import torch
from torch import nn

from agents.engine.nets import SquashedGaussianActor, mlp
from agents.robustness import robust
from agents.robustness.robust import (
    action_deviation,
    ernie_a_penalty,
    ernie_penalty,
    greedy_action_attack,
    greedy_continuous_action_attack,
    mean_field_penalty,
    observation_attack,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def row_size(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Independent of the module: the per-row size of delta in each geometry."""
    if norm == "l2":
        return torch.sqrt((delta**2).sum(-1))
    if norm == "linf":
        return delta.abs().max(-1).values
    return torch.sqrt((delta**2).sum(-1)).mean(-1)  # w1: mean over atoms of the atom's l2 length


def params_of(net: nn.Module) -> list[torch.Tensor]:
    return [p for p in net.parameters()]


def directional_fd(loss_fn, params: list[torch.Tensor], direction: list[torch.Tensor], h: float = 1e-6) -> float:
    """(F(theta + h v) - F(theta - h v)) / (2 h), moving the parameters in place and restoring them."""
    values = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, v in zip(params, direction):
                p.add_(sign * h * v)
        values.append(loss_fn().item())
        with torch.no_grad():
            for p, v in zip(params, direction):
                p.sub_(sign * h * v)
    return (values[0] - values[1]) / (2 * h)


def grad_dot(loss: torch.Tensor, params: list[torch.Tensor], direction: list[torch.Tensor]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True)
    return sum((g * v).sum() for g, v in zip(grads, direction)).item()


def flat_grad(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)])


# ---------------------------------------------------------------- projection after every step


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("scale", ["absolute", "relative"])
def test_every_pgd_iterate_lies_in_the_ball(norm, scale):
    torch.manual_seed(0)
    net = mlp(5, (16,), 3)
    obs = torch.randn(8, 5)
    obs[:, 2] = 0.0  # a zero feature: never perturbed under the relative scale
    iterates = []
    radius = 0.1
    # steps much longer than the radius: without the projection every iterate would leave the ball
    _, delta = ernie_penalty(
        net, obs, radius=radius, steps=4, step_size=1.0, norm=norm, scale=scale, generator=gen(),
        on_step=lambda t, d: iterates.append((t, d)),
    )  # fmt: skip
    assert [t for t, _ in iterates] == [0, 1, 2, 3, 4]
    for _, u in iterates:
        assert (row_size(u, norm) <= radius + 1e-6).all()
    if norm == "l2":  # normalized steps of size 1 end on the sphere
        assert torch.allclose(row_size(iterates[-1][1], norm), torch.full((8,), radius), atol=1e-6)
    magnitude = obs.abs() if scale == "relative" else torch.ones_like(obs)
    assert torch.allclose(delta, iterates[-1][1] * magnitude, atol=1e-6)  # the recorded iterates are the ones used
    if scale == "relative":
        assert (delta[:, 2] == 0).all()
        if norm == "linf":
            assert (delta.abs() <= radius * obs.abs() + 1e-7).all()


def test_multi_agent_observations_get_one_ball_per_agent():
    torch.manual_seed(0)
    net = mlp(5, (16,), 2)
    obs = torch.randn(4, 3, 5)  # [B, agents, D]
    penalty, delta = ernie_penalty(net, obs, radius=0.2, steps=2, generator=gen())
    assert torch.allclose(row_size(delta, "l2"), torch.full((4, 3), 0.2), atol=1e-6)
    with torch.no_grad():
        by_hand = (net(obs + delta) - net(obs)).pow(2).sum(-1).mean()  # mean over batch and agents
    assert torch.allclose(penalty.detach(), by_hand)


def test_projection_is_euclidean_for_l2_and_a_clamp_for_linf():
    delta = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    assert torch.allclose(robust.project(delta, 1.0, "l2"), torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))
    assert torch.allclose(robust.project(delta, 0.35, "linf"), torch.tensor([[0.35, 0.35], [0.3, 0.35], [0, 0]]))


def test_random_start_is_inside_the_ball_and_reproducible():
    like = torch.zeros(200, 6)
    for norm in ("l2", "linf"):
        a = robust.random_start(like, 0.5, norm, generator=gen(3))
        b = robust.random_start(like, 0.5, norm, generator=gen(3))
        assert torch.equal(a, b)
        assert (row_size(a, norm) <= 0.5 + 1e-6).all() and row_size(a, norm).max() > 0.4
    small = robust.random_start(like, 0.5, "l2", init_std=1e-3, generator=gen())
    assert 5e-4 < small.std() < 2e-3  # the reference's Gaussian start


# ---------------------------------------------------------------- the attack is an attack


def test_pgd_penalty_beats_random_perturbations_of_the_same_radius_by_2x():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(18, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 5))
    obs = torch.randn(64, 18)
    radius = 0.3
    attacked, delta = ernie_penalty(net, obs, radius=radius, steps=3, generator=gen())
    assert torch.allclose(row_size(delta, "l2"), torch.full((64,), radius), atol=1e-5)
    with torch.no_grad():
        clean = net(obs)
        random_values = []
        g = gen(1)
        for _ in range(10):  # random directions scaled to the same radius, by hand
            d = torch.randn(obs.shape, generator=g)
            d = radius * d / d.norm(dim=-1, keepdim=True)
            random_values.append((net(obs + d) - clean).pow(2).sum(-1).mean())
    random_mean = torch.stack(random_values).mean()
    assert attacked.item() >= 2.0 * random_mean.item()
    # the Baseline-Gaussian control: same per-row size as the PGD delta, another direction, a smaller penalty
    gaussian, random_delta = ernie_penalty(net, obs, radius=radius, steps=3, baseline_gaussian=True, generator=gen())
    assert torch.allclose(row_size(random_delta, "l2"), row_size(delta, "l2"), atol=1e-5)
    assert not torch.allclose(random_delta, delta)
    assert gaussian.item() < 0.5 * attacked.item()


# ---------------------------------------------------------------- gradients: Stackelberg = total derivative


def float64_tanh_mlp(seed: int = 0, in_dim: int = 4, out_dim: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return mlp(in_dim, (8, 8), out_dim, act="tanh").double()


def random_direction(params: list[torch.Tensor], seed: int = 5) -> list[torch.Tensor]:
    g = gen(seed)
    return [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]


@pytest.mark.parametrize("radius", [10.0, 0.05])  # projection inactive / active at every step
def test_stackelberg_gradient_is_the_total_derivative(radius):
    net = float64_tanh_mlp()
    obs = torch.randn(6, 4, generator=gen(2), dtype=torch.float64)
    kwargs = dict(radius=radius, steps=3, step_size=0.1 if radius > 1 else 0.05, init_std=0.1, form="stackelberg")

    def penalty():  # the same delta^0 at every theta: a fresh generator with the same seed
        return ernie_penalty(net, obs, generator=gen(7), **kwargs)[0]

    params, direction = params_of(net), random_direction(params_of(net))
    analytic = grad_dot(penalty(), params, direction)
    numeric = directional_fd(penalty, params, direction)
    assert abs(analytic - numeric) <= 1e-6 * abs(numeric)


def test_plain_gradient_is_the_gradient_with_the_perturbation_frozen():
    net = float64_tanh_mlp()
    obs = torch.randn(6, 4, generator=gen(2), dtype=torch.float64)
    params, direction = params_of(net), random_direction(params_of(net))
    plain, delta = ernie_penalty(net, obs, radius=10.0, steps=3, step_size=0.1, init_std=0.1, form="plain",
                                 generator=gen(7))  # fmt: skip

    def frozen():  # by hand: mean_b ||f(o + delta) - f(o)||^2 with delta a constant
        return (net(obs + delta) - net(obs)).pow(2).sum(-1).mean()

    assert torch.allclose(flat_grad(plain, params), flat_grad(frozen(), params), rtol=1e-12, atol=1e-15)
    analytic = grad_dot(plain, params, direction)  # before the finite differences move the parameters
    numeric = directional_fd(frozen, params, direction)
    assert abs(analytic - numeric) <= 1e-6 * abs(numeric)


def test_plain_and_stackelberg_forms_share_the_value_but_not_the_gradient():
    net = float64_tanh_mlp()
    obs = torch.randn(6, 4, generator=gen(2), dtype=torch.float64)
    common = dict(radius=10.0, steps=3, step_size=0.1, init_std=0.1)
    plain, delta_plain = ernie_penalty(net, obs, form="plain", generator=gen(7), **common)
    stack, delta_stack = ernie_penalty(net, obs, form="stackelberg", generator=gen(7), **common)
    assert torch.allclose(plain, stack, rtol=1e-12) and torch.allclose(delta_plain, delta_stack, rtol=1e-12)
    g_plain, g_stack = flat_grad(plain, params_of(net)), flat_grad(stack, params_of(net))
    assert (g_plain - g_stack).norm() > 1e-3 * g_stack.norm()  # the leader-follower term is not negligible


def test_sign_steps_carry_no_leader_follower_term():
    # delta^K = clamp(delta^0 + eta sum_t sign(g_t)): sign has zero derivative, so d delta^K / d theta = 0 and the
    # Stackelberg gradient is the plain one; both equal the finite difference of the piecewise-smooth value.
    net = float64_tanh_mlp()
    obs = torch.randn(6, 4, generator=gen(2), dtype=torch.float64)
    kwargs = dict(radius=10.0, steps=3, step_size=0.05, init_std=0.1, norm="linf")
    params, direction = params_of(net), random_direction(params_of(net))

    def penalty(form):
        return ernie_penalty(net, obs, form=form, generator=gen(7), **kwargs)[0]

    g_plain, g_stack = flat_grad(penalty("plain"), params), flat_grad(penalty("stackelberg"), params)
    assert torch.allclose(g_plain, g_stack, rtol=1e-12, atol=1e-15)
    analytic = grad_dot(penalty("stackelberg"), params, direction)
    numeric = directional_fd(lambda: penalty("stackelberg"), params, direction)
    assert abs(analytic - numeric) <= 1e-6 * abs(numeric)


def test_the_attack_leaves_parameter_grads_alone_and_the_penalty_backpropagates():
    net = float64_tanh_mlp()
    obs = torch.randn(6, 4, dtype=torch.float64)
    for form in ("plain", "stackelberg"):
        net.zero_grad(set_to_none=True)
        penalty, _ = ernie_penalty(net, obs, radius=0.2, steps=2, form=form, generator=gen())
        assert all(p.grad is None for p in net.parameters())
        penalty.backward()
        assert all(p.grad is not None for p in net.parameters())
        # every weight matters; the last bias cancels in f(o + delta) - f(o) (its gradient is rounding noise)
        assert all(m.weight.grad.abs().sum() > 1e-8 for m in net if isinstance(m, nn.Linear))


@pytest.mark.parametrize("form", ["plain", "stackelberg"])
def test_minimizing_the_penalty_lowers_the_measured_lipschitz_constant(form):
    from agents.robustness.lipschitz import jacobian_spectral_norm

    torch.manual_seed(0)
    net = mlp(4, (16, 16), 2)
    obs = torch.randn(32, 4)
    before = jacobian_spectral_norm(net, obs, method="autograd").mean()
    for step in range(30):  # plain gradient descent on the penalty alone
        penalty, _ = ernie_penalty(net, obs, radius=0.3, steps=2, form=form, generator=gen(step))
        net.zero_grad()
        penalty.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 10.0 * p.grad  # the penalty is ~1e-3 here: a large step
    assert jacobian_spectral_norm(net, obs, method="autograd").mean() < 0.5 * before


# ---------------------------------------------------------------- the suite's own networks (in-place ReLU)


def relu_copy_without_inplace(net: nn.Sequential) -> nn.Sequential:
    layers = [nn.ReLU(inplace=False) if isinstance(m, nn.ReLU) else m for m in net]
    return nn.Sequential(*layers)  # the same Linear modules: shared parameters


def test_suite_mlp_with_inplace_relu_gives_the_same_stackelberg_gradient_as_out_of_place():
    torch.manual_seed(1)
    net = mlp(4, (16, 16), 3).double()
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in net)
    twin = relu_copy_without_inplace(net)
    obs = torch.randn(8, 4, dtype=torch.float64)
    kwargs = dict(radius=0.3, steps=3, form="stackelberg")
    a = flat_grad(ernie_penalty(net, obs, generator=gen(4), **kwargs)[0], params_of(net))
    b = flat_grad(ernie_penalty(twin, obs, generator=gen(4), **kwargs)[0], params_of(net))
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("which", ["mlp", "actor"])
def test_stackelberg_gradient_on_the_suite_networks_matches_finite_differences(which):
    # ReLU networks are piecewise linear; with float64 and h = 1e-6 no pre-activation of this fixed batch
    # crosses zero, so central differences are exact up to rounding.
    torch.manual_seed(3)
    if which == "mlp":
        net = mlp(4, (16, 16), 3).double()
        policy, params = net, params_of(net)
    else:
        actor = SquashedGaussianActor(4, 2, (16, 16)).double()
        policy, params = actor.deterministic, params_of(actor)
    obs = torch.randn(6, 4, generator=gen(2), dtype=torch.float64)

    def penalty():
        return ernie_penalty(policy, obs, radius=0.3, steps=3, form="stackelberg", generator=gen(9))[0]

    direction = random_direction(params)
    analytic = grad_dot(penalty(), params, direction)
    numeric = directional_fd(penalty, params, direction)
    assert abs(analytic - numeric) <= 1e-6 * abs(numeric)


# ---------------------------------------------------------------- distances: KL contract


def test_kl_for_gaussian_distributions_and_logits_matches_the_formula():
    torch.manual_seed(0)
    body = nn.Linear(3, 4).double()

    def gaussian(o):
        mean, log_std = body(o).chunk(2, dim=-1)
        return torch.distributions.Normal(mean, log_std.exp())

    obs = torch.randn(5, 3, dtype=torch.float64)
    penalty, delta = ernie_penalty(gaussian, obs, radius=0.2, steps=2, distance="kl", generator=gen())
    with torch.no_grad():
        m1, ls1 = body(obs + delta).chunk(2, -1)
        m2, ls2 = body(obs).chunk(2, -1)
        s1, s2 = ls1.exp(), ls2.exp()
        by_hand = (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum(-1).mean()
    assert torch.allclose(penalty.detach(), by_hand, rtol=1e-10)
    penalty.backward()
    assert body.weight.grad is not None

    logits_net = nn.Linear(3, 4).double()
    penalty, delta = ernie_penalty(logits_net, obs, radius=0.2, steps=2, distance="kl", generator=gen())
    with torch.no_grad():
        p = torch.softmax(logits_net(obs + delta), -1)
        q = torch.softmax(logits_net(obs), -1)
        by_hand = (p * (p / q).log()).sum(-1).mean()
    assert torch.allclose(penalty.detach(), by_hand, rtol=1e-10)

    with pytest.raises(ValueError, match="distance='kl'"):
        ernie_penalty(gaussian, obs, radius=0.2, steps=1, distance="l2")


def test_unknown_options_are_rejected():
    net = nn.Linear(3, 2)
    obs = torch.randn(2, 3)
    for bad in (dict(form="simultaneous"), dict(norm="l1"), dict(scale="log"), dict(distance="tv")):
        with pytest.raises(ValueError, match="choose from"):
            ernie_penalty(net, obs, radius=0.1, steps=1, **bad)


# ---------------------------------------------------------------- ERNIE-A: greedy search vs brute force


def joint_index(actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Joint action [R, N] -> row of a [S, n_actions ** N] table (agent 0 is the most significant digit)."""
    weights = n_actions ** torch.arange(actions.shape[-1] - 1, -1, -1)
    return (actions * weights).sum(-1)


def table_q(table: torch.Tensor, n_actions: int):
    return lambda state, actions: table[state, joint_index(actions, n_actions)]


def brute_force(table_row: torch.Tensor, clean: tuple[int, ...], n_actions: int, budget: int) -> float:
    q_clean = table_row[joint_index(torch.tensor(clean), n_actions)]
    best = 0.0
    for joint in itertools.product(range(n_actions), repeat=len(clean)):
        if sum(a != b for a, b in zip(joint, clean)) <= budget:
            best = max(best, (q_clean - table_row[joint_index(torch.tensor(joint), n_actions)]).pow(2).item())
    return best


def test_greedy_with_budget_one_is_the_exact_maximum_on_random_tables():
    n_actions, agents, states = 3, 3, 20
    table = torch.randn(states, n_actions**agents, generator=gen())
    state = torch.arange(states)
    actions = torch.randint(n_actions, (states, agents), generator=gen(1))
    worst = greedy_action_attack(table_q(table, n_actions), state, actions, n_actions, budget=1)
    assert ((worst != actions).sum(-1) == 1).all()
    q = table_q(table, n_actions)
    found = (q(state, actions) - q(state, worst)).pow(2)
    expected = torch.tensor([brute_force(table[s], tuple(actions[s].tolist()), n_actions, 1) for s in range(states)])
    assert torch.allclose(found, expected)


def test_greedy_with_budget_two_matches_brute_force_on_a_hand_made_table():
    # Binary agents, clean joint action 000 with Q = 0. Worst single flip: agent 0 (Q = 3, squared 9); the worst
    # pair extends it: 110 (Q = 5, squared 25), which is also the maximum over the whole Hamming-2 ball.
    q_of = {"000": 0.0, "100": 3.0, "010": 1.0, "001": -2.0, "110": 5.0, "101": -1.0, "011": 0.5, "111": 9.0}
    table = torch.tensor([[q_of[f"{i:03b}"] for i in range(8)]])
    clean = torch.zeros(1, 3, dtype=torch.long)
    q = table_q(table, 2)
    one = greedy_action_attack(q, torch.tensor([0]), clean, 2, budget=1)
    two = greedy_action_attack(q, torch.tensor([0]), clean, 2, budget=2)
    assert one.tolist() == [[1, 0, 0]] and two.tolist() == [[1, 1, 0]]
    assert brute_force(table[0], (0, 0, 0), 2, 1) == 9.0 and brute_force(table[0], (0, 0, 0), 2, 2) == 25.0
    # 111 (81) is outside the Hamming-2 ball: a budget of 3 reaches it
    assert greedy_action_attack(q, torch.tensor([0]), clean, 2, budget=3).tolist() == [[1, 1, 1]]


def test_greedy_is_a_lower_bound_when_the_worst_pair_starts_with_a_mild_flip():
    # 011 gives (-6)^2 = 36, but its single flips (1 and 1) look harmless next to 100 (3), so greedy finds 9.
    q_of = {"000": 0.0, "100": 3.0, "010": 1.0, "001": 1.0, "110": 3.0, "101": 3.0, "011": -6.0, "111": 0.0}
    table = torch.tensor([[q_of[f"{i:03b}"] for i in range(8)]])
    q = table_q(table, 2)
    worst = greedy_action_attack(q, torch.tensor([0]), torch.zeros(1, 3, dtype=torch.long), 2, budget=2)
    assert (q(torch.tensor([0]), worst) - 0.0).pow(2).item() == 9.0 < brute_force(table[0], (0, 0, 0), 2, 2)


def test_greedy_respects_available_actions():
    table = torch.tensor([[0.0, 1.0, 2.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0]])  # two agents, three actions
    q = table_q(table, 3)
    clean = torch.zeros(1, 2, dtype=torch.long)
    assert greedy_action_attack(q, torch.tensor([0]), clean, 3, budget=1).tolist() == [[1, 0]]  # Q = 10 at (1, 0)
    avail = torch.ones(1, 2, 3, dtype=torch.bool)
    avail[0, 0, 1] = False
    assert greedy_action_attack(q, torch.tensor([0]), clean, 3, budget=1, avail_actions=avail).tolist() == [[0, 2]]


def test_ernie_a_penalty_value_and_gradient_by_hand():
    table = nn.Parameter(torch.tensor([[0.0, 1.0, -3.0, 0.5], [2.0, 0.0, 1.0, 0.0]]))  # two binary agents
    state = torch.tensor([0, 1])
    actions = torch.tensor([[0, 0], [0, 0]])
    penalty, worst = ernie_a_penalty(table_q(table, 2), state, actions, 2, budget=1)
    assert worst.tolist() == [[1, 0], [0, 1]]  # state 0: Q(10) = -3 (9 > 1); state 1: Q(01) = 0 (4 > 1)
    assert math.isclose(penalty.item(), ((0 + 3) ** 2 + (2 - 0) ** 2) / 2)
    penalty.backward()
    expected = torch.zeros(2, 4)
    expected[0, 0], expected[0, 2] = 2 * 3 / 2, -2 * 3 / 2  # d/dQ(a) and d/dQ(a') of (Q(a) - Q(a'))^2 / B
    expected[1, 0], expected[1, 1] = 2 * 2 / 2, -2 * 2 / 2
    assert torch.allclose(table.grad, expected)


def test_continuous_greedy_attack_moves_the_most_influential_agents_to_the_box_corner():
    weights = torch.tensor([[0.5, -0.5], [2.0, 1.0], [-1.0, 0.2], [0.1, 0.1]])  # agent influence |w_j|_1: 1, 3, 1.2
    q = lambda state, actions: (actions * weights).sum((-1, -2)) + state
    state = torch.zeros(5)
    clean = torch.zeros(5, 4, 2)
    one = greedy_continuous_action_attack(q, state, clean, 1, steps=5, generator=gen())
    assert (one[:, [0, 2, 3]] == 0).all() and torch.allclose(one[:, 1].abs(), torch.ones(5, 2))
    assert torch.allclose((q(state, one) - q(state, clean)).pow(2), torch.full((5,), 9.0))
    two = greedy_continuous_action_attack(q, state, clean, 2, steps=5, generator=gen())
    assert (two[:, [0, 3]] == 0).all() and ((two != 0).any(-1).sum(-1) == 2).all()
    assert torch.allclose((q(state, two) - q(state, clean)).pow(2), torch.full((5,), 4.2**2))


# ---------------------------------------------------------------- mean-field form


def test_mean_field_attack_stays_in_the_wasserstein_ball_and_finds_the_worst_mean_shift():
    torch.manual_seed(0)
    weight = torch.tensor([[2.0, 0.0], [0.0, 0.5], [1.0, 0.0]], dtype=torch.float64)  # sigma_max^2 = 5
    own_weight = torch.randn(3, 2, dtype=torch.float64)
    policy = lambda own, atoms: atoms.mean(1) @ weight.T + own @ own_weight.T
    own = torch.randn(4, 2, dtype=torch.float64)
    atoms = torch.randn(4, 6, 2, dtype=torch.float64)
    iterates = []
    radius = 0.1
    penalty, delta = mean_field_penalty(
        policy, own, atoms, radius=radius, steps=30, step_size=2 * radius, generator=gen(),
        on_step=lambda t, d: iterates.append(d),
    )  # fmt: skip
    assert len(iterates) == 31 and all((row_size(d, "w1") <= radius + 1e-9).all() for d in iterates)
    assert delta.shape == atoms.shape
    assert torch.allclose(penalty, torch.tensor(5.0 * radius**2, dtype=torch.float64), rtol=1e-6)


def test_mean_field_stackelberg_gradient_is_the_total_derivative():
    torch.manual_seed(0)
    net = mlp(2 + 2, (8,), 3, act="tanh").double()
    policy = lambda own, atoms: net(torch.cat([own, torch.tanh(atoms).mean(1)], -1))  # a nonlinear aggregation
    own = torch.randn(4, 2, generator=gen(1), dtype=torch.float64)
    atoms = torch.randn(4, 5, 2, generator=gen(2), dtype=torch.float64)

    def penalty():
        return mean_field_penalty(policy, own, atoms, radius=0.2, steps=3, generator=gen(3))[0]

    params, direction = params_of(net), random_direction(params_of(net))
    analytic = grad_dot(penalty(), params, direction)
    numeric = directional_fd(penalty, params, direction)
    assert abs(analytic - numeric) <= 1e-6 * abs(numeric)


def test_continuous_ernie_a_penalty_uses_the_attacked_actions():
    weights = torch.tensor([[1.0], [-2.0]])
    q = lambda state, actions: (actions * weights).sum((-1, -2)) * state
    state = nn.Parameter(torch.tensor([1.0, 0.5]))
    penalty, worst = robust.continuous_ernie_a_penalty(q, state, torch.zeros(2, 2, 1), 1, steps=5, generator=gen())
    assert torch.allclose(worst[:, 1].abs(), torch.ones(2, 1)) and (worst[:, 0] == 0).all()
    assert torch.allclose(penalty, torch.tensor((4.0 + 1.0) / 2))  # (Q(a) - Q(a'))^2 = (2 s)^2
    penalty.backward()
    assert torch.allclose(state.grad, torch.tensor([8.0 * 1.0, 8.0 * 0.5]) / 2)  # d/ds (2 s)^2 / B


# ---------------------------------------------------------------- evaluation attack


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_observation_attack_respects_eps_per_agent_and_beats_random(norm):
    torch.manual_seed(0)
    net = mlp(6, (32,), 2, act="tanh")
    obs = torch.randn(16, 3, 6)  # [N, agents, D]
    eps = 0.1
    iterates = []
    with torch.no_grad():  # evaluation runs without autograd; the attack must still work
        attacked = observation_attack(action_deviation(net, obs), obs, eps=eps, norm=norm, generator=gen(),
                                      on_step=lambda t, d: iterates.append(d))  # fmt: skip
    assert attacked.shape == obs.shape and not attacked.requires_grad
    assert len(iterates) == 11
    for d in [*iterates, attacked - obs]:
        assert (row_size(d, norm) <= eps + 1e-6).all()  # one ball per env and agent
    assert all(p.grad is None for p in net.parameters())
    with torch.no_grad():
        clean = net(obs)
        found = (net(attacked) - clean).pow(2).sum(-1).mean()
        noise = torch.randn(obs.shape, generator=gen(1))
        noise = eps * (noise.sign() if norm == "linf" else noise / noise.norm(dim=-1, keepdim=True))
        random = (net(obs + noise) - clean).pow(2).sum(-1).mean()
    assert found > 2 * random


def test_observation_attack_on_minus_q_lowers_the_critic():
    torch.manual_seed(0)
    critic = mlp(4, (16,), 1, act="tanh")
    obs = torch.randn(10, 4)
    attacked = observation_attack(lambda o: -critic(o).squeeze(-1), obs, eps=0.2, steps=10)
    with torch.no_grad():
        assert (critic(attacked) < critic(obs)).all()
