"""Value-factorization mixers of per-agent quantiles (or scalars, K = 1) into the joint return.

Every mixer maps chosen-action utilities ``z [B, T, agents, K]`` and the global state
``[B, T, S]`` to the joint quantiles ``[B, T, K]`` at the *same* fractions:

* ``SumMixer`` -- VDN (Sunehag et al. 2017, arXiv 1706.05296) for K = 1 and DDN (DFAC) for K > 1:
  ``Z_jt(tau_k) = sum_i Z_i(tau_k)``.
* ``QuantileQMixer`` -- QMIX (Rashid et al., ICML 2018, arXiv 1803.11485) for K = 1 and DMIX
  (DFAC's mean-shape decomposition) for K > 1:
  ``Qbar_i = mean_k Z_i(tau_k)``,  ``Z_jt(tau_k) = QMIX_s(Qbar) + sum_i (Z_i(tau_k) - Qbar_i)``.
  With K = 1 the shape term is exactly zero, so the scalar learner is QMIX bit for bit.
* ``QMixer`` -- the monotonic hyper-network mixer: ``W_1 = |hyper_1(s)|`` ``[agents, E]``,
  ``b_1 = lin(s)``, ``hidden = ELU(Q W_1 + b_1)``, ``w_f = |hyper_f(s)|`` ``[E]``,
  ``V(s) = lin(ReLU(lin(s)))``, output ``hidden . w_f + V(s)`` (2-layer hyper-nets).

Deviations from the reference: none in the algebra (DFAC's released DMIX: shape weight 1, no
state-dependent shape term). The mixers work on any leading dims instead of PyMARL's
``[B, T]`` views.
"""

from __future__ import annotations

import torch
from torch import nn


class SumMixer(nn.Module):
    """VDN / DDN: ``[..., agents, K] -> [..., K]`` by summing over agents (no parameters)."""

    def forward(self, z: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return z.sum(-2)


class QMixer(nn.Module):
    """QMIX's monotonic mixer: ``q [..., agents]``, ``state [..., S]`` -> ``[...]``."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_embed: int = 64):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, embed_dim * n_agents)
        )
        self.hyper_wf = nn.Sequential(
            nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, embed_dim)
        )
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.value = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        lead = q.shape[:-1]
        q = q.reshape(-1, 1, self.n_agents)  # [rows, 1, agents]
        s = state.reshape(-1, state.shape[-1])  # [rows, S]
        # abs() keeps dQ_jt/dQ_i >= 0: the monotonicity that makes decentralized argmax consistent.
        w1 = self.hyper_w1(s).abs().view(-1, self.n_agents, self.embed_dim)
        b1 = self.hyper_b1(s).view(-1, 1, self.embed_dim)
        hidden = nn.functional.elu(torch.bmm(q, w1) + b1)  # [rows, 1, E]
        wf = self.hyper_wf(s).abs().view(-1, self.embed_dim, 1)
        out = torch.bmm(hidden, wf).view(-1) + self.value(s).view(-1)
        return out.view(lead)


class QuantileQMixer(nn.Module):
    """DMIX (QMIX for K = 1): ``z [..., agents, K]`` -> ``[..., K]``, see the module docstring."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_embed: int = 64):
        super().__init__()
        self.qmix = QMixer(n_agents, state_dim, embed_dim, hypernet_embed)

    def forward(self, z: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        mean = z.mean(-1)  # Qbar_i: sample mean over the drawn fractions, [..., agents]
        shape = (z - mean.unsqueeze(-1)).sum(-2)  # sum_i (Z_i - Qbar_i), [..., K]
        return self.qmix(mean, state).unsqueeze(-1) + shape


def make_mixer(kind: str, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_embed: int = 64) -> nn.Module:
    """``sum`` (VDN / DDN) or ``qmix`` (QMIX / DMIX)."""
    if kind == "sum":
        return SumMixer()
    if kind == "qmix":
        return QuantileQMixer(n_agents, state_dim, embed_dim, hypernet_embed)
    raise ValueError(f"unknown mixer {kind!r}; known: sum, qmix")
