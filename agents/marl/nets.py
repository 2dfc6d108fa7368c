"""The shared agent networks of the MARL learners (recurrent or feed-forward), with an optional IQN head.

One network is shared by all agents (parameter sharing); agent ``i``'s input is
``[o_i, onehot(u_i^{t-1}), onehot(i)]`` (PyMARL / DFAC). The recurrent agent
(``RecurrentAgentNet``, ``MarlConfig.agent_net='gru'``, the default):

    x_i   = ReLU(W_1 [o_i, onehot(u_i^{t-1}), onehot(i)] + b_1)                  # [H]
    h_i^t = GRUCell(x_i, h_i^{t-1})                                              # [H]
    c_j(tau) = cos(pi * j * tau),  j = 0..d-1  (j starts at 0)                     # [d]
    phi(tau) = ReLU(W_phi c(tau) + b_phi)                                          # [H]
    Z_i(h_i, . ; tau) = W_2 (h_i * phi(tau)) + b_2                                 # [A]

The IQN head is Dabney et al., ICML 2018 (arXiv 1806.06923); the recurrent trunk is DFAC's
``iqn_rnn_agent`` (Sun, Lee, Lee, ICML 2021, arXiv 2102.07936). Without the IQN head the network is
PyMARL's ``rnn_agent`` (QMIX / VDN): ``Q_i = W_2 h_i + b_2``, returned with a trailing K = 1 axis so
scalar and distributional learners share every later line of code.

The feed-forward agent (``FeedForwardAgentNet``, ``MarlConfig.agent_net='mlp'``) replaces the first
two lines by a two-layer trunk of the same width, with the same heads:

    h_i^t = act(W_1' act(W_1 [o_i, onehot(u_i^{t-1}), onehot(i)] + b_1) + b_1')   # [H], act = Tanh or ReLU

With the scalar head and Tanh this is BenchMARL's QMIX agent (its ``layers/mlp.yaml``:
Linear-Tanh-Linear-Tanh-Linear, ``num_cells [H, H]``); it is also the two-layer feed-forward trunk of
the ROE matrix-game setup. The hidden "state" is unused: :meth:`FeedForwardAgentNet.recurrent`
ignores it and returns ``h_i^t`` so the learner and collectors keep the recurrent interface.

Deviations from the reference: fractions are an argument of the head with shape ``[B, K]`` (one
set per sample, broadcast over agents); per-agent fractions are refused (DFAC's quantile mixture
needs shared fractions). Quantile crossing is not corrected, as in the reference.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class QuantileEmbedding(nn.Module):
    """``phi(tau) = ReLU(W cos(pi * j * tau) + b)``, ``j = 0..d-1``: ``[..., K] -> [..., K, H]``."""

    def __init__(self, embed_dim: int, out_dim: int):
        super().__init__()
        self.register_buffer("freqs", math.pi * torch.arange(embed_dim, dtype=torch.float32), persistent=False)
        self.linear = nn.Linear(embed_dim, out_dim)

    def features(self, taus: torch.Tensor) -> torch.Tensor:
        """The cosine features ``[..., K, d]``; column 0 is ``cos(0) = 1``."""
        return torch.cos(taus.unsqueeze(-1) * self.freqs)

    def forward(self, taus: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(self.features(taus)))


class _UtilityHead:
    """The heads shared by both agent nets (a mixin: the net creates ``embedding`` and ``fc2``)."""

    embedding: QuantileEmbedding | None
    fc2: nn.Linear

    @property
    def distributional(self) -> bool:
        return self.embedding is not None

    def head(self, hidden: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        """Utilities ``[B, agents, A, K]`` from hidden ``[B, agents, H]`` and fractions ``[B, K]``."""
        if self.embedding is None:
            return self.fc2(hidden).unsqueeze(-1)
        if taus is None:
            raise ValueError("an IQN head needs quantile fractions")
        if taus.dim() != 2 or taus.shape[0] != hidden.shape[0]:
            raise ValueError(
                f"fractions must be one set per sample, shape [B={hidden.shape[0]}, K], shared by the agents; "
                f"got {tuple(taus.shape)} (per-agent fractions break the quantile mixture)"
            )
        phi = self.embedding(taus)  # [B, K, H]
        mixed = hidden.unsqueeze(2) * phi.unsqueeze(1)  # [B, agents, K, H]
        return self.fc2(mixed).transpose(-1, -2)  # [B, agents, A, K]


class RecurrentAgentNet(_UtilityHead, nn.Module):
    """Parameter-shared GRU agent; ``head`` returns ``[B, agents, A, K]`` (K = 1 without IQN)."""

    def __init__(self, input_dim: int, n_actions: int, hidden_dim: int = 64, quantile_embed_dim: int | None = 64):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRUCell(hidden_dim, hidden_dim)
        self.embedding = QuantileEmbedding(quantile_embed_dim, hidden_dim) if quantile_embed_dim else None
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def recurrent(self, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One GRU step: inputs ``[..., in]``, hidden ``[..., H]`` -> ``[..., H]`` (any leading dims)."""
        lead = inputs.shape[:-1]
        x = torch.relu(self.fc1(inputs.reshape(-1, inputs.shape[-1])))
        return self.rnn(x, hidden.reshape(-1, self.hidden_dim)).reshape(*lead, self.hidden_dim)

    def sequence(self, inputs: torch.Tensor) -> torch.Tensor:
        """Hidden states of whole episodes from a zero state: inputs ``[B, T, agents, in]`` -> ``[B, T, agents, H]``.

        The same function as ``T`` calls of :meth:`recurrent` (equal up to float rounding), run as
        one fused ``torch.gru`` over time: ``fc1`` and the GRU's input projections are one matmul
        each for all steps, and the time loop runs in C++ instead of Python (the training unroll
        is the hot path of the MARL update).
        """
        b, length, agents = inputs.shape[:3]
        x = torch.relu(self.fc1(inputs.transpose(1, 2).reshape(b * agents, length, -1)))  # [B*agents, T, H]
        h0 = x.new_zeros(1, b * agents, self.hidden_dim)
        weights = (self.rnn.weight_ih, self.rnn.weight_hh, self.rnn.bias_ih, self.rnn.bias_hh)
        out, _ = torch.gru(x, h0, weights, True, 1, 0.0, self.training, False, True)  # batch-first, 1 layer
        return out.reshape(b, agents, length, self.hidden_dim).transpose(1, 2)


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class FeedForwardAgentNet(_UtilityHead, nn.Module):
    """Parameter-shared feed-forward agent (Linear-act-Linear-act trunk, the same heads as the GRU net).

    The same ``recurrent`` / ``sequence`` / ``head`` interface as :class:`RecurrentAgentNet`; the
    hidden state passed to ``recurrent`` is ignored (each step sees only its own input).
    """

    def __init__(
        self,
        input_dim: int,
        n_actions: int,
        hidden_dim: int = 64,
        quantile_embed_dim: int | None = 64,
        activation: str = "tanh",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc_mid = nn.Linear(hidden_dim, hidden_dim)
        self.activation = ACTIVATIONS[activation]()
        self.embedding = QuantileEmbedding(quantile_embed_dim, hidden_dim) if quantile_embed_dim else None
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def trunk(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[..., in] -> [..., H]`` (any leading dims)."""
        return self.activation(self.fc_mid(self.activation(self.fc1(inputs))))

    def recurrent(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """One step: inputs ``[..., in]`` -> ``[..., H]``; ``hidden`` is ignored (kept for the interface)."""
        return self.trunk(inputs)

    def sequence(self, inputs: torch.Tensor) -> torch.Tensor:
        """Features of whole episodes: inputs ``[B, T, agents, in]`` -> ``[B, T, agents, H]`` (one pass, no loop)."""
        return self.trunk(inputs)


def make_agent_net(
    kind: str,
    input_dim: int,
    n_actions: int,
    hidden_dim: int = 64,
    quantile_embed_dim: int | None = 64,
    activation: str = "tanh",
) -> RecurrentAgentNet | FeedForwardAgentNet:
    """``gru`` (:class:`RecurrentAgentNet`) or ``mlp`` (:class:`FeedForwardAgentNet` with ``activation``)."""
    if kind == "gru":
        return RecurrentAgentNet(input_dim, n_actions, hidden_dim, quantile_embed_dim)
    if kind == "mlp":
        return FeedForwardAgentNet(input_dim, n_actions, hidden_dim, quantile_embed_dim, activation)
    raise ValueError(f"unknown agent net {kind!r}; known: gru, mlp")
