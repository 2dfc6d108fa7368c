"""The prompt policy: a frozen causal LM, a trainable MLP adapter and the LM's tied output head as a Q-network.

Papers: Deng et al., "RLPrompt: Optimizing Discrete Text Prompts with Reinforcement Learning",
EMNLP 2022 (arXiv 2205.12548); Choi et al., "Hard Prompts Made Interpretable: Sparse Entropy
Regularization for Prompt Tuning with RL" (PIN), ACL 2024 (arXiv 2407.14733).

At prompt step t the frozen LM reads the prefix (BOS + the t tokens so far) and gives its final-layer
hidden state h_t [H] (after the final layer norm) at the last position. The adapter replaces it
(no residual) and the frozen tied head E [V, H] (the LM's input embedding matrix) turns it into one
Q-value per token:

    Q(s_t, .) = E MLP(h_t) + logit_bias,     MLP: H -> 2048 -> H, ReLU       [..., H] -> [..., V]

Initialisation: Xavier-uniform weights with gain 1e-4, every bias -1e-4, so all Q-values start near
0 and the first policy is almost uniform. The target network is a second copy of the adapter only
(the LM and E are shared and frozen), updated by Polyak averaging (agents.prompt.losses.polyak_target).
PIN's ignorable-token filter keeps the top-k tokens of the LM's own next-token logits at h_t
(``filter_top_k``; None = RLPrompt, no filter); acting samples through a regularizer strategy
(agents.prompt.sparse: top-k-truncated softmax for RLPrompt, sparsemax for PIN) or takes the argmax.

The LM can be any HuggingFace ``AutoModelForCausalLM``-like module: ``lm(input_ids=...,
past_key_values=..., use_cache=True, output_hidden_states=True)`` returning ``hidden_states`` (a
tuple whose last entry is ``[N, L, H]``) and ``past_key_values`` (transformers 5 calls both the
argument and the output field ``cache``; either works), plus ``get_input_embeddings()``
and optionally ``get_output_embeddings()``. Nothing here imports transformers. Token ids are fed
to the LM as ids (never decoded and re-encoded, which can change BPE ids).

The LM is deliberately not a registered submodule: ``state_dict()``, ``parameters()`` and
``train()`` see only the adapters, so checkpoints hold the trainable part (and its target) and the
frozen LM comes from its loader. ``.to()`` / ``.double()`` still move the LM along.

Deviations from the reference: the reference feeds the whole vocabulary when no filter is set and
re-tokenises sampled text before the next LM step; here ids are fed directly. ``logit_bias`` is
RLPrompt's constant added to every Q-value (-10 for style transfer); PIN's boolean "add the LM's
log-prior" option of the same name is not implemented. The filter's prior logits come from the LM's
output head applied to h_t (equal to the LM's next-token logits for tied-head LMs such as GPT-2 and
OPT), so the mask can be recomputed from stored hidden states in replay.
"""

from __future__ import annotations

import copy
import inspect

import torch
from torch import nn
from torch.nn import functional as F

from agents.prompt.losses import discounts_to_go, polyak_target, soft_q_loss
from agents.prompt.sparse import Regularizer, SoftmaxRegularizer, combine_masks, lm_filter_mask


def make_adapter(
    hidden_size: int, adapter_hidden: int = 2048, gain: float = 1e-4, bias: float = -1e-4
) -> nn.Sequential:
    """MLP ``[..., H] -> [..., H]``: Linear(H, M), ReLU, Linear(M, H); Xavier-uniform(gain) weights, constant biases.

    H (M + 1) + M (H + 1) trainable parameters: 3,148,544 for H = 768, M = 2048.
    """
    adapter = nn.Sequential(nn.Linear(hidden_size, adapter_hidden), nn.ReLU(), nn.Linear(adapter_hidden, hidden_size))
    for layer in (adapter[0], adapter[2]):
        nn.init.xavier_uniform_(layer.weight, gain=gain)
        nn.init.constant_(layer.bias, bias)
    return adapter


class PromptQNetwork(nn.Module):
    """Frozen LM + trainable adapter (+ its Polyak target) + frozen tied head: Q-values and batched acting.

    Args:
        lm: the frozen causal LM (see the module docstring for the interface it must offer).
        adapter_hidden: width M of the adapter's hidden layer (2048 in both papers).
        init_gain, init_bias: adapter initialisation (1e-4 and -1e-4 in both papers).
        logit_bias: constant added to every Q-value (RLPrompt: 0 classification, -10 style transfer).
        filter_top_k: keep the LM's own top-k next tokens (PIN: 10,000); None = no filter.
        regularizer: the sampling / value strategy (default softmax, temperature 1).
        sample_top_k: sample only among the top-k Q-values when exploring (RLPrompt: 256 / 50; PIN: None).
        metrics_episodes: ``v1_mc`` only: log value, target value and support size on this many episodes
            of each update batch (None: all of them); the loss always uses the whole batch.
    """

    def __init__(
        self,
        lm: nn.Module,
        *,
        adapter_hidden: int = 2048,
        init_gain: float = 1e-4,
        init_bias: float = -1e-4,
        logit_bias: float = 0.0,
        filter_top_k: int | None = None,
        regularizer: Regularizer | None = None,
        sample_top_k: int | None = None,
        metrics_episodes: int | None = None,
    ):
        super().__init__()
        self.metrics_episodes = metrics_episodes  # v1_mc: episodes of a batch its logged values are measured on
        for p in lm.parameters():
            p.requires_grad_(False)
        lm.eval()  # frozen for good: no dropout when sampling or recomputing hidden states
        object.__setattr__(self, "_lm", lm)  # unregistered on purpose: keeps the LM out of state_dict
        embedding = lm.get_input_embeddings().weight  # [V, H]
        self.vocab_size, self.hidden_size = embedding.shape
        self.adapter = make_adapter(self.hidden_size, adapter_hidden, init_gain, init_bias)
        self.target_adapter = copy.deepcopy(self.adapter).requires_grad_(False)
        self.logit_bias = logit_bias
        self.filter_top_k = filter_top_k
        self.regularizer = regularizer if regularizer is not None else SoftmaxRegularizer()
        self.sample_top_k = sample_top_k
        # transformers 5 names the KV cache argument and output field `cache`, earlier releases
        # `past_key_values`; read the LM's own signature once
        self._cache_name = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"

    @property
    def lm(self) -> nn.Module:
        """The frozen causal LM (not part of ``state_dict``)."""
        return self._lm

    def _apply(self, fn, recurse=True):
        # .to(device) / .double() reach registered children only; the frozen LM must follow them
        self._lm._apply(fn)
        return super()._apply(fn, recurse)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The adapter's parameters: the only ones the optimizer updates."""
        return list(self.adapter.parameters())

    # ---- Q-values and the filter ---------------------------------------------------------------

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Tied head: ``[..., H] -> [..., V]``, E features + logit_bias (E frozen, no bias of its own)."""
        logits = F.linear(features, self.lm.get_input_embeddings().weight)
        return logits + self.logit_bias if self.logit_bias else logits

    def q_values(self, hidden: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Q(s, .) = E MLP(h) + logit_bias: hidden ``[..., H]`` -> ``[..., V]``; ``target`` uses the Polyak copy."""
        return self.head((self.target_adapter if target else self.adapter)(hidden))

    def prior_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM's own next-token logits at the same state, ``[..., H] -> [..., V]``, no gradient."""
        with torch.no_grad():
            output = self.lm.get_output_embeddings() if hasattr(self.lm, "get_output_embeddings") else None
            if output is None:
                return F.linear(hidden, self.lm.get_input_embeddings().weight)
            return output(hidden)

    def filter_mask(self, hidden: torch.Tensor) -> torch.Tensor | None:
        """PIN's allowed-token mask ``[..., V]`` bool (the LM's top ``filter_top_k``), or None without a filter."""
        if self.filter_top_k is None:
            return None
        return lm_filter_mask(self.prior_logits(hidden), self.filter_top_k)

    def update_target(self, polyak: float) -> None:
        """target <- (1 - polyak) target + polyak online (0.001 before every training step in both papers)."""
        polyak_target(self.adapter, self.target_adapter, polyak)

    def loss(
        self,
        hidden: torch.Tensor,
        tokens: torch.Tensor,
        reward: torch.Tensor,
        implementation: str = "v2_v3",
        gamma: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The soft Q-learning loss of a batch of episodes from their stored LM states.

        hidden ``[B, T, H]`` (the state each token was chosen from), tokens ``[B, T]`` long, reward
        ``[B]``. Online Q with gradient, target Q without, the LM filter mask recomputed from the
        same states (valid because the LM is frozen); see agents.prompt.losses.soft_q_loss.
        """
        if implementation == "v1_mc":
            return self._monte_carlo_loss(hidden, tokens, reward, gamma)
        q = self.q_values(hidden)  # [B, T, V]
        with torch.no_grad():
            q_target = self.q_values(hidden, target=True)
        mask = self.filter_mask(hidden)  # [B, T, V] or None
        return soft_q_loss(q, q_target, tokens, reward, self.regularizer, implementation, gamma, mask)

    def _monte_carlo_loss(
        self, hidden: torch.Tensor, tokens: torch.Tensor, reward: torch.Tensor, gamma: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """PIN's ``v1_mc`` without the ``[B, T, V]`` Q tensor: the loss needs only the taken tokens' Q-values.

        ``Q_t = E[a_t] . MLP(h_t) + logit_bias`` from the gathered embedding rows (the same number as
        gathering from :meth:`q_values`, up to float rounding; the same gradient), so an update costs
        ``B T H`` instead of ``B T V H``. The value, target value and support size are logging only
        here (no bootstrapping, the filter never changes a taken token's Q); they are computed without
        gradient on the first ``metrics_episodes`` episodes of the batch (all when None), which keeps
        the vocabulary-wide sparsemax sorts out of most of the update's cost.
        """
        embedding = self.lm.get_input_embeddings().weight
        q_taken = (self.adapter(hidden) * embedding[tokens]).sum(-1) + self.logit_bias  # [B, T]
        to_go = discounts_to_go(tokens.shape[1], gamma, q_taken) * reward.to(q_taken.dtype).unsqueeze(-1)
        losses = (q_taken - to_go).pow(2)
        with torch.no_grad():
            sub = hidden if self.metrics_episodes is None else hidden[: self.metrics_episodes]
            mask = self.filter_mask(sub)
            q, q_target = self.q_values(sub), self.q_values(sub, target=True)
            metrics = {
                "train/q_taken": q_taken.detach().mean(),
                "train/value": self.regularizer.value(q, mask).mean(),
                "train/target_value": self.regularizer.value(q_target, mask).mean(),
                "train/support_size": self.regularizer.support_size(q, mask).float().mean(),
                "loss/per_step": losses.detach().mean(),
            }
        return losses.sum(1).mean(), metrics

    # ---- acting --------------------------------------------------------------------------------

    @torch.no_grad()
    def act(
        self,
        hidden: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        step: int = 0,
        explore: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Next tokens ``[N]`` long for hidden states ``[N, H]``.

        ``explore``: a sample of the regularizer's policy (truncated to ``sample_top_k``); else the
        greedy argmax (ties to the lowest id). Only tokens allowed by ``mask [N, V]`` (optional)
        and by the LM filter are ever chosen. ``step`` is accepted for the agent contract
        (schedules); nothing here depends on it.
        """
        del step
        mask = combine_masks(mask, self.filter_mask(hidden))
        q = self.q_values(hidden)
        if explore:
            return self.regularizer.sample(q, mask, generator, top_k=self.sample_top_k)
        return self.regularizer.greedy(q, mask)

    # ---- the frozen LM -------------------------------------------------------------------------

    @torch.no_grad()
    def lm_step(self, input_ids: torch.Tensor, past_key_values=None) -> tuple[torch.Tensor, object]:
        """Feed ``input_ids [N, L]`` after the cached prefix; returns (h at the last position ``[N, H]``, new cache)."""
        cache = {self._cache_name: past_key_values}
        out = self.lm(input_ids=input_ids, **cache, use_cache=True, output_hidden_states=True)
        return out.hidden_states[-1][:, -1], getattr(out, self._cache_name)

    @torch.no_grad()
    def rollout(
        self,
        num_prompts: int,
        length: int,
        bos_token_id: int,
        *,
        step: int = 0,
        explore: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Write ``num_prompts`` prompts of ``length`` tokens from BOS alone, with the LM's KV cache.

        Returns ``tokens [N, T]`` long and ``hidden [N, T, H]``, the state h_t from which token t was
        chosen (stored so that replay can recompute online and target Q-values while the LM is frozen).
        """
        device = self.lm.get_input_embeddings().weight.device
        ids = torch.full((num_prompts, 1), bos_token_id, dtype=torch.long, device=device)
        hidden, cache = self.lm_step(ids)
        tokens, states = [], []
        for t in range(length):
            action = self.act(hidden, step=step, explore=explore, generator=generator)
            tokens.append(action)
            states.append(hidden)
            if t + 1 < length:  # the state after the last token is never used (V = 0 there)
                hidden, cache = self.lm_step(action.unsqueeze(-1), cache)
        return {"tokens": torch.stack(tokens, 1), "hidden": torch.stack(states, 1)}
