"""Network building blocks shared by the algorithms.

* :func:`mlp` - a plain multilayer perceptron.
* :class:`EnsembleLinear` / :class:`QEnsemble` - K critics evaluated as one batched matmul per
  hidden layer (``baddbmm``) and one batched dot product for the scalar output: twin critics cost
  one kernel per layer instead of two.
* :class:`SquashedGaussianActor` - tanh-squashed diagonal Gaussian policy (SAC).

Seed stacks: :class:`StackLinear` (the actor's layers) and :class:`EnsembleLinear` / :class:`QEnsemble`
also run with parameters stacked on one leading ``[S]`` dimension (S seeds, through
``torch.func.functional_call``) on inputs ``[S, B, ...]``: one batched matmul per layer for all S
networks, the same module code (``agents.sac.SeedStack``). With unstacked parameters they run the
ops they always ran.

Bias inside a compiled graph: eager, :class:`StackLinear` and :class:`EnsembleLinear` make one
``addmm`` / ``baddbmm`` call, which copies the bias into the output and accumulates the product onto
it. Traced by ``torch.compile`` (``torch.compiler.is_compiling()``) they multiply and add the bias
apart instead: inductor fuses the add into the activation's pass that follows, so the copy, a whole
extra pass over each ``[K, B, H]`` output, goes (the same function up to float rounding; 4 % of
the compiled Hopper-sized SAC update, ``docs/algorithms/sac.md``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
ACTIVATIONS = ("relu", "tanh", "elu", "gelu")  # the names :func:`activation` knows


def activation(name: str) -> nn.Module:
    """Activation module by name ('relu', 'tanh', 'elu', 'gelu').

    ReLU and ELU work in place: every use here follows a linear layer, whose backward needs its
    input and weight but not its output, so overwriting the output is safe for autograd and saves
    one allocation and one pass over memory per layer (the values are the same).
    """
    table = {
        "relu": lambda: nn.ReLU(inplace=True),
        "tanh": nn.Tanh,
        "elu": lambda: nn.ELU(inplace=True),
        "gelu": nn.GELU,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(table)}")
    return table[name]()


class StackLinear(nn.Linear):
    """``nn.Linear`` (same parameters, initialisation and forward) that also runs with its weight stacked
    on a leading seed dimension: weight ``[S, out, in]``, bias ``[S, out]``, input ``[S, B, in]`` ->
    output ``[S, B, out]`` by one ``baddbmm`` (the S layers' own ``addmm`` s, batched)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stacked = self.weight.dim() > 2
        if torch.compiler.is_compiling():  # the bias added apart, fused into the next pass (module docstring)
            if stacked:
                return torch.bmm(x, self.weight.mT) + self.bias.unsqueeze(-2)
            return x @ self.weight.T + self.bias
        if not stacked:
            return F.linear(x, self.weight, self.bias)
        return torch.baddbmm(self.bias.unsqueeze(-2), x, self.weight.mT)


def mlp(
    in_dim: int, hidden: tuple[int, ...], out_dim: int, act: str = "relu", linear: type[nn.Linear] = nn.Linear
) -> nn.Sequential:
    """``in_dim -> hidden[0] -> ... -> out_dim`` with ``act`` between layers, none after the last
    (``linear``: the layer class, ``nn.Linear`` or :class:`StackLinear`)."""
    layers: list[nn.Module] = []
    dims = (in_dim, *hidden)
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [linear(a, b), activation(act)]
    layers.append(linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """K independent linear layers applied as one batched matmul.

    weight ``[K, in, out]``, bias ``[K, 1, out]``; input ``[K, B, in]`` -> output ``[K, B, out]``.
    Each member is initialised exactly like ``nn.Linear`` (Kaiming-uniform, a=sqrt(5)). Stacked
    parameters (weight ``[S, K, in, out]``, bias ``[S, K, 1, out]``) take input ``[S * K, B, in]``.
    """

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        for k in range(members):
            # nn.Linear's init on the transposed [out, in] view, so fan-in is right.
            nn.init.kaiming_uniform_(self.weight.data[k].T, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [S, K, ...] parameters as [S * K, ...] (a view; unstacked, the tensors themselves)
        weight, bias = self.weight.flatten(0, -3), self.bias.flatten(0, -3)
        if torch.compiler.is_compiling():  # the bias added apart, fused into the next pass (module docstring)
            return torch.bmm(x, weight) + bias
        return torch.baddbmm(bias, x, weight)


class QEnsemble(nn.Module):
    """K state-action critics Q_k(s, a) as one batched network.

    ``forward(obs [B, O], action [B, A]) -> [K, B]``. With ``members=2`` this is SAC's twin critic.
    With parameters stacked on a leading seed dimension S: ``forward(obs [S, B, O], action [S, B, A])
    -> [S, K, B]``, the S x K critics as one batched network.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], members: int = 2, act: str = "relu"):
        super().__init__()
        self.members = members
        dims = (obs_dim + action_dim, *hidden)
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = EnsembleLinear(members, dims[-1], 1)
        self.act = activation(act)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)
        stack = x.shape[:-2]  # () or (S,)
        # [K, B, O+A] (no copy), stacked [S * K, B, O+A]
        x = x.unsqueeze(-3).expand(*stack, self.members, *x.shape[-2:]).flatten(0, -3)
        for layer in self.layers:
            x = self.act(layer(x))
        # The scalar head as a dot product, [K, B, H] . [K, 1, H] -> [K, B]: the same function as
        # ``self.head(x)`` (up to float rounding), but a batched matmul with one output column
        # takes CPU BLAS's slow path (~90 us forward and ~180 us backward for 2 x 256 x 256 on
        # 2 cores, against ~30 / ~100).
        weight, bias = self.head.weight.flatten(0, -3), self.head.bias.flatten(0, -3)
        q = torch.linalg.vecdot(x, weight.transpose(1, 2)) + bias.squeeze(-1)
        return q.unflatten(0, (*stack, self.members)) if stack else q


class SquashedGaussianActor(nn.Module):
    """pi(a|s) = tanh(u), u ~ N(mu(s), sigma(s)^2): actions in (-1, 1).

    log pi(a|s) = log N(u; mu, sigma) - sum_i log(1 - tanh(u_i)^2). With u = mu + sigma * eps and
    the stable form -log(1 - tanh(u)^2) = 2 (u + softplus(-2u) - log 2) this is

        log pi(a|s) = sum_i [2 (u_i + softplus(-2 u_i)) - log sigma_i - eps_i^2 / 2] - A (log(2 pi) / 2 + 2 log 2),

    written so that the constant is one subtraction (fewer small kernels in every SAC update).
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], act: str = "relu"):
        super().__init__()
        if not hidden:  # the head reads the last hidden layer
            raise ValueError("SquashedGaussianActor needs at least one hidden layer width, e.g. (256, 256)")
        if len(hidden) > 1:
            self.trunk = mlp(obs_dim, hidden[:-1], hidden[-1], act, linear=StackLinear)
        else:
            self.trunk = StackLinear(obs_dim, hidden[-1])
        self.trunk_act = activation(act)
        self.head = StackLinear(hidden[-1], 2 * action_dim)  # mean and log-std in one matmul

    def distribution_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.head(self.trunk_act(self.trunk(obs))).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample: ``(action [B, A], log_prob [B])``; ``noise`` [B, A] is the standard
        normal draw (default: a fresh ``randn_like``; SAC's compiled step draws it outside its graph)."""
        mean, log_std = self.distribution_params(obs)
        noise = torch.randn_like(mean) if noise is None else noise
        pre_tanh = mean + log_std.exp() * noise
        # (u - mu) / sigma = noise exactly, so the Gaussian term needs no division.
        per_dim = 2.0 * (pre_tanh + F.softplus(-2.0 * pre_tanh)) - log_std - 0.5 * noise.square()
        constant = mean.shape[-1] * (0.5 * math.log(2 * math.pi) + 2.0 * math.log(2.0))
        return torch.tanh(pre_tanh), per_dim.sum(-1) - constant

    def sample(self, obs: torch.Tensor) -> torch.Tensor:
        """The action of :meth:`forward` without its log-probability (acting): the same random draw."""
        mean, log_std = self.distribution_params(obs)
        return torch.tanh(mean + log_std.exp() * torch.randn_like(mean))

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The mode's image tanh(mu(s)), used for evaluation."""
        return torch.tanh(self.distribution_params(obs)[0])
