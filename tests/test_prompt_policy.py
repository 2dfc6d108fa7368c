"""The prompt Q-network (agents/prompt/policy.py) on a tiny random stand-in LM (embedding + GRU), no download."""

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from agents.prompt.losses import soft_q_loss
from agents.prompt.policy import PromptQNetwork, make_adapter
from agents.prompt.sparse import SoftmaxRegularizer, SparsemaxRegularizer, sparsemax

torch.set_num_threads(1)
VOCAB, HIDDEN, ADAPTER = 13, 8, 16


class TinyLM(nn.Module):
    """HuggingFace-shaped causal LM: ids -> GRU -> layer norm; the GRU state plays the KV cache.

    ``head_bias`` gives it a tied output head with its own bias, so the LM's next-token logits differ
    from E h (the filter must use the LM's head, not the bare embedding).
    """

    def __init__(self, head_bias: bool = False):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.norm = nn.LayerNorm(HIDDEN)
        self.head = None
        if head_bias:
            self.head = nn.Linear(HIDDEN, VOCAB)
            self.head.weight = self.embed.weight  # tied

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return self.head

    def forward(self, input_ids, past_key_values=None, use_cache=True, output_hidden_states=False):
        x = self.embed(input_ids)
        out, state = self.gru(x, past_key_values)
        out = self.norm(out)
        logits = self.head(out) if self.head is not None else F.linear(out, self.embed.weight)
        return SimpleNamespace(hidden_states=(x, out), logits=logits, past_key_values=state)


class TinyLMNewCache(TinyLM):
    """The same LM with transformers 5's names: the KV cache argument and output field are ``cache``."""

    def forward(self, input_ids, cache=None, use_cache=True, output_hidden_states=False):
        out = super().forward(input_ids, cache, use_cache, output_hidden_states)
        return SimpleNamespace(hidden_states=out.hidden_states, logits=out.logits, cache=out.past_key_values)


def make_policy(seed: int = 0, head_bias: bool = False, new_cache: bool = False, **kwargs) -> PromptQNetwork:
    torch.manual_seed(seed)
    lm = TinyLMNewCache(head_bias) if new_cache else TinyLM(head_bias)
    return PromptQNetwork(lm, adapter_hidden=ADAPTER, **kwargs)


def randomize_adapter(policy: PromptQNetwork, seed: int = 1) -> None:
    """Weights large enough that Q-values differ visibly (the paper's init keeps them near 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.adapter.parameters():
            p.copy_(torch.randn(p.shape, generator=g))


def hidden_states(n: int = 5, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, HIDDEN, generator=torch.Generator().manual_seed(seed))


def test_adapter_size_and_initialisation():
    assert sum(p.numel() for p in make_adapter(768, 2048).parameters()) == 3_148_544
    policy = make_policy()
    first, second = policy.adapter[0], policy.adapter[2]
    # Xavier-uniform bound sqrt(6 / (fan_in + fan_out)) scaled by the gain 1e-4
    assert first.weight.abs().max() <= 1e-4 * (6 / (HIDDEN + ADAPTER)) ** 0.5
    assert second.weight.abs().max() <= 1e-4 * (6 / (HIDDEN + ADAPTER)) ** 0.5
    assert first.weight.abs().max() > 1e-6  # not all zero
    assert (first.bias == -1e-4).all() and (second.bias == -1e-4).all()
    assert torch.equal(policy.target_adapter[0].weight, first.weight)
    assert policy.q_values(hidden_states()).abs().max() < 1e-2  # near-uniform first policy


def test_q_values_by_hand():
    policy = make_policy(logit_bias=-10.0)
    randomize_adapter(policy)
    h = hidden_states()
    w1, b1 = policy.adapter[0].weight, policy.adapter[0].bias
    w2, b2 = policy.adapter[2].weight, policy.adapter[2].bias
    embedding = policy.lm.embed.weight
    expected = (torch.relu(h @ w1.T + b1) @ w2.T + b2) @ embedding.T - 10.0
    assert torch.allclose(policy.q_values(h), expected, atol=1e-5)
    assert policy.q_values(h).shape == (5, VOCAB)
    assert policy.q_values(h.view(5, 1, HIDDEN).expand(5, 3, HIDDEN)).shape == (5, 3, VOCAB)  # [B, T, H] too
    # the target copy is separate until synchronised
    assert not torch.allclose(policy.q_values(h, target=True), policy.q_values(h))


def test_lm_is_frozen_and_gradient_reaches_the_adapter_only():
    policy = make_policy()
    randomize_adapter(policy)
    assert all(not p.requires_grad for p in policy.lm.parameters())
    assert not policy.lm.training
    assert [id(p) for p in policy.trainable_parameters()] == [id(p) for p in policy.adapter.parameters()]
    assert all(not p.requires_grad for p in policy.target_adapter.parameters())
    hidden = hidden_states(6).view(3, 2, HIDDEN)  # [B, T, H]
    q, q_target = policy.q_values(hidden), policy.q_values(hidden, target=True)
    actions = torch.tensor([[0, 1], [2, 3], [4, 5]])
    loss, _ = soft_q_loss(q, q_target, actions, torch.tensor([1.0, -1.0, 0.5]), SparsemaxRegularizer(), "v2_v3")
    loss.backward()
    assert all(p.grad is None for p in policy.lm.parameters())
    assert all(p.grad is None for p in policy.target_adapter.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.adapter.parameters())
    policy.train()
    assert not policy.lm.training  # the LM never switches to training mode (no dropout)


def test_state_dict_holds_the_trainable_part_and_round_trips():
    policy = make_policy(seed=0)
    randomize_adapter(policy)
    policy.update_target(0.5)
    state = policy.state_dict()
    assert set(state) == {
        f"{net}.{i}.{p}" for net in ("adapter", "target_adapter") for i in (0, 2) for p in ("weight", "bias")
    }
    parent = nn.Module()
    parent.policy = policy
    assert all(
        key.startswith("policy.adapter.") or key.startswith("policy.target_adapter.") for key in parent.state_dict()
    )
    # a fresh policy on the same LM weights but another adapter init acts identically after loading
    other = make_policy(seed=0)
    torch.manual_seed(5)
    other.adapter = make_adapter(HIDDEN, ADAPTER, gain=1.0)
    other.load_state_dict(copy.deepcopy(state))
    h = hidden_states()
    assert torch.equal(other.q_values(h), policy.q_values(h))
    assert torch.equal(other.q_values(h, target=True), policy.q_values(h, target=True))
    a = policy.act(h, generator=torch.Generator().manual_seed(3))
    b = other.act(h, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_loss_from_stored_states_composes_q_target_and_filter():
    policy = make_policy(filter_top_k=5, regularizer=SparsemaxRegularizer(0.5))
    randomize_adapter(policy)
    policy.update_target(0.3)
    out = policy.rollout(4, 2, bos_token_id=1, generator=torch.Generator().manual_seed(8))
    reward = torch.tensor([1.0, 0.0, -2.0, 0.5])
    loss, metrics = policy.loss(out["hidden"], out["tokens"], reward, "v2_v3")
    hidden = out["hidden"]
    lm_logits = hidden @ policy.lm.embed.weight.T  # [B, T, V]
    mask = torch.zeros_like(lm_logits, dtype=torch.bool).scatter_(-1, lm_logits.topk(5).indices, True)
    expected, _ = soft_q_loss(
        policy.q_values(hidden), policy.q_values(hidden, target=True).detach(), out["tokens"], reward,
        SparsemaxRegularizer(0.5), "v2_v3", mask=mask,
    )  # fmt: skip
    assert torch.allclose(loss, expected, atol=1e-6)
    assert metrics["train/support_size"] <= 5
    loss.backward()
    assert all(p.grad is None for p in policy.target_adapter.parameters())


def test_update_target_is_polyak_averaging():
    policy = make_policy()
    randomize_adapter(policy)
    before = policy.target_adapter[0].weight.clone()
    online = policy.adapter[0].weight.clone()
    policy.update_target(0.001)
    assert torch.allclose(policy.target_adapter[0].weight, 0.999 * before + 0.001 * online, atol=1e-7)
    policy.update_target(1.0)
    assert torch.equal(policy.target_adapter[0].weight, policy.adapter[0].weight)


@pytest.mark.parametrize("head_bias", [False, True])
def test_filter_is_the_lm_own_top_k_and_acting_respects_it(head_bias):
    policy = make_policy(head_bias=head_bias, filter_top_k=4, regularizer=SparsemaxRegularizer())
    if head_bias:
        with torch.no_grad():
            policy.lm.head.bias.copy_(torch.linspace(-3, 3, VOCAB))
    randomize_adapter(policy)
    h = hidden_states(7)
    lm_logits = policy.lm.embed.weight @ h.T  # [V, N]
    if head_bias:
        lm_logits = lm_logits + policy.lm.head.bias.unsqueeze(-1)
    mask = policy.filter_mask(h)
    for row in range(7):
        top = sorted(range(VOCAB), key=lambda i: -lm_logits[i, row].item())[:4]
        assert sorted(mask[row].nonzero().squeeze(-1).tolist()) == sorted(top)
    # greedy: the argmax of Q over the allowed tokens, computed by hand
    q = policy.q_values(h)
    expected = torch.where(mask, q, -torch.inf).argmax(-1)
    assert torch.equal(policy.act(h, explore=False), expected)
    # exploring: only tokens in the sparsemax support of the filtered Q-values, reproducible by seed
    support = sparsemax(q, mask) > 0
    draws = policy.act(h.repeat(40, 1), generator=torch.Generator().manual_seed(4))
    assert support.repeat(40, 1).gather(-1, draws.unsqueeze(-1)).all()
    assert mask.repeat(40, 1).gather(-1, draws.unsqueeze(-1)).all()
    assert torch.equal(draws, policy.act(h.repeat(40, 1), generator=torch.Generator().manual_seed(4)))
    # an extra caller mask narrows the choice further
    only = torch.zeros_like(mask)
    only[torch.arange(7), mask.float().argmax(-1)] = True
    assert torch.equal(policy.act(h, only, explore=False), only.float().argmax(-1))


def test_softmax_sampling_uses_the_top_k_truncation():
    # a high temperature makes the softmax nearly uniform: without the truncation all 13 tokens would appear
    policy = make_policy(sample_top_k=2, regularizer=SoftmaxRegularizer(temperature=1e4))
    randomize_adapter(policy)
    h = hidden_states(3)
    top2 = policy.q_values(h).topk(2).indices  # [3, 2]
    draws = policy.act(h.repeat(200, 1), generator=torch.Generator().manual_seed(6)).view(200, 3)
    for row in range(3):
        assert set(draws[:, row].tolist()) <= set(top2[row].tolist())
        assert len(set(draws[:, row].tolist())) == 2  # both kept tokens do get sampled


@pytest.mark.parametrize("new_cache", [False, True])
def test_rollout_states_match_the_lm_run_on_each_prefix(new_cache):
    policy = make_policy(new_cache=new_cache, filter_top_k=6, regularizer=SparsemaxRegularizer())
    randomize_adapter(policy)
    out = policy.rollout(4, 3, bos_token_id=0, generator=torch.Generator().manual_seed(7))
    tokens, hidden = out["tokens"], out["hidden"]
    assert tokens.shape == (4, 3) and tokens.dtype == torch.long and hidden.shape == (4, 3, HIDDEN)
    for t in range(3):
        prefix = torch.cat([torch.zeros(4, 1, dtype=torch.long), tokens[:, :t]], 1)  # BOS + t tokens, no cache
        full = policy.lm(input_ids=prefix).hidden_states[-1][:, -1]
        assert torch.allclose(hidden[:, t], full, atol=1e-6)
        assert policy.filter_mask(hidden[:, t]).gather(-1, tokens[:, t : t + 1]).all()
    greedy = policy.rollout(4, 3, bos_token_id=0, explore=False)["tokens"]
    assert (greedy == greedy[0]).all()  # every prompt starts from BOS alone: one greedy prompt
    assert torch.equal(greedy, policy.rollout(2, 3, bos_token_id=0, explore=False)["tokens"][:1].expand(4, 3))


def test_double_moves_the_lm_along():
    policy = make_policy().double()
    assert policy.lm.embed.weight.dtype == torch.float64
    assert policy.q_values(hidden_states().double()).dtype == torch.float64
