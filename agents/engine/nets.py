"""Network building blocks shared by the algorithms.

* :func:`mlp` - a plain multilayer perceptron.
* :class:`EnsembleLinear` / :class:`QEnsemble` - K critics evaluated as one batched matmul per
  hidden layer (``baddbmm``) and one batched dot product for the scalar output: twin critics cost
  one kernel per layer instead of two.
* :class:`SquashedGaussianActor` - tanh-squashed diagonal Gaussian policy (SAC).
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


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, act: str = "relu") -> nn.Sequential:
    """``in_dim -> hidden[0] -> ... -> out_dim`` with ``act`` between layers, none after the last."""
    layers: list[nn.Module] = []
    dims = (in_dim, *hidden)
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), activation(act)]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """K independent linear layers applied as one batched matmul.

    weight ``[K, in, out]``, bias ``[K, 1, out]``; input ``[K, B, in]`` -> output ``[K, B, out]``.
    Each member is initialised exactly like ``nn.Linear`` (Kaiming-uniform, a=sqrt(5)).
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
        return torch.baddbmm(self.bias, x, self.weight)


class QEnsemble(nn.Module):
    """K state-action critics Q_k(s, a) as one batched network.

    ``forward(obs [B, O], action [B, A]) -> [K, B]``. With ``members=2`` this is SAC's twin critic.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], members: int = 2, act: str = "relu"):
        super().__init__()
        self.members = members
        dims = (obs_dim + action_dim, *hidden)
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = EnsembleLinear(members, dims[-1], 1)
        self.act = activation(act)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1).expand(self.members, -1, -1)  # [K, B, O+A], no copy
        for layer in self.layers:
            x = self.act(layer(x))
        # The scalar head as a dot product, [K, B, H] . [K, 1, H] -> [K, B]: the same function as
        # ``self.head(x)`` (up to float rounding), but a batched matmul with one output column
        # takes CPU BLAS's slow path (~90 us forward and ~180 us backward for 2 x 256 x 256 on
        # 2 cores, against ~30 / ~100).
        return torch.linalg.vecdot(x, self.head.weight.transpose(1, 2)) + self.head.bias.squeeze(-1)


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
        self.trunk = mlp(obs_dim, hidden[:-1], hidden[-1], act) if len(hidden) > 1 else nn.Linear(obs_dim, hidden[-1])
        self.trunk_act = activation(act)
        self.head = nn.Linear(hidden[-1], 2 * action_dim)  # mean and log-std in one matmul

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
