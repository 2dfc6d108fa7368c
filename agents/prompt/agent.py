"""The LM-prompt agent: RLPrompt and sparse-Tsallis RLPrompt (PIN) as presets of one soft Q-learning agent.

Papers: Deng et al., "RLPrompt: Optimizing Discrete Text Prompts with Reinforcement Learning",
EMNLP 2022 (arXiv 2205.12548); Choi et al., "Hard Prompts Made Interpretable: Sparse Entropy
Regularization for Prompt Tuning with RL" (PIN), ACL 2024 (arXiv 2407.14733).

One agent (:class:`PromptAgent`) writes fixed-length prompts token by token with
:class:`agents.prompt.policy.PromptQNetwork` (frozen causal LM, trainable adapter, frozen tied head,
``Q(s_t, .) = E MLP(h_t)``) and learns from whole prompt episodes on the suite's episodic loop
(:func:`agents.engine.episodes.train_episodic`). Three switches separate the methods:

=====================  ===================================  =====================================
switch                 RLPrompt (``rlprompt/...``)          PIN (``pin/...``)
=====================  ===================================  =====================================
regularizer            softmax: V = logsumexp(Q)            sparsemax: V = spmax(Q)
LM top-k token filter  off                                  the policy LM's own top-k tokens
exploration            top-k-truncated softmax sample       sparsemax sample
loss (default)         v2_v3 (PCL, both terms)              v1_mc (Monte-Carlo regression)
data                   the 16 prompts just written          uniform replay of stored prompts
=====================  ===================================  =====================================

One update on a batch of B prompt episodes (``obs [B, T+1, H]`` LM states, ``actions [B, T+1]``
tokens, ``reward [B, T+1]`` with the reward after the last token only; row T is the state after
the prompt and is not used): Polyak target ``theta_bar <- (1 - tau) theta_bar + tau theta``
(before every training step, as both papers), then the chosen loss of
:mod:`agents.prompt.losses` on ``hidden = obs[:, :T]``, ``tokens = actions[:, :T]``,
``r = reward.sum(1)``, summed over time and averaged over the batch, Adam with gradient-norm
clipping.

The family's session (:func:`agents.prompt.build_session`) runs on the engine's episodic loop with
the prompt layout (:func:`episode_layout`), evaluates the greedy prompt on the dev split every ``eval_every`` env
steps (the best dev prompt so far is kept in the agent's state, shown above the progress bar and
written to TensorBoard as text) and ends with ``prompt_report.json`` in the run directory: the best
and the final greedy prompt, their dev and test accuracy, the sparsemax / softmax support size,
the perplexity of the prompt under the policy LM, the LM rank of each of its tokens (the quantity
PIN's filter bounds) and its whole-word fraction. ``evaluate.py RUN_DIR`` scores the greedy prompt on
the test split (:func:`agents.prompt.evaluation.play_episodes`, return = test accuracy in percent) and
``--prompt`` prints the report.

Deviations from the reference: RLPrompt's on-policy step (the batch just sampled) is the loop's
``replay=latest`` (every update reads exactly the newest ``batch_episodes`` episodes); PIN's replay
stores LM states and recomputes online and target Q from them, as here. The best prompt is chosen
by dev accuracy, ties broken by the raw dev reward. Prompts are written by feeding token ids, never
re-tokenised text. The naturalness measures (perplexity under the policy LM, whole-word fraction
against the dataset's own words) are this project's: the papers' measure was not recovered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from agents.engine.checkpoint import restore_generator
from agents.engine.config import AgentConfig, ConfigError, check_finite, doc
from agents.engine.loops import EpisodicConfig
from agents.prompt.losses import LOSSES
from agents.prompt.policy import PromptQNetwork
from agents.prompt.sparse import REGULARIZERS, make_regularizer
from envs.prompt_env import PromptEpisodes, make_classification_env

ENV_ID = "prompt"  # the few-shot classification prompt env (envs.prompt_env.make_classification_env)


# ------------------------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class PromptConfig(AgentConfig):
    """The prompt agent: policy LM, adapter, regularizer (softmax = RLPrompt, sparsemax = PIN), loss, optimizer."""

    policy_lm: str = doc(
        "policy backbone: a shipped name (regula-tiny-gpt2), a save_pretrained directory or a hub id (distilgpt2)",
        "regula-tiny-gpt2",
        check=lambda name: None if name.strip() else "a model name or a directory",
    )
    regularizer: str = doc(
        "entropy regularizer: softmax (RLPrompt, V = logsumexp Q) or sparsemax (PIN, V = spmax Q)",
        "softmax",
        choices=tuple(REGULARIZERS),
    )
    temperature: float = doc("alpha: V = alpha Omega*(Q / alpha); both papers fix 1", 1.0, gt=0)
    filter_top_k: int | None = doc(
        "PIN's filter: keep the policy LM's own top-k next tokens (PIN: 10,000 of 50,257); null: no filter",
        None,
        ge=1,
    )
    sample_top_k: int | None = doc(
        "explore by sampling only among the top-k Q-values (RLPrompt: 256); null: the whole policy", None, ge=1
    )
    loss: str = doc(
        "soft Q-learning loss: v1 (one-step), v1_mc (PIN's released Monte-Carlo v1), v2, v3, v2_v3 (RLPrompt default)",
        "v2_v3",
        choices=LOSSES,
    )
    gamma: float = doc("discount between prompt tokens (both papers: 1)", 1.0, ge=0, le=1)
    polyak: float = doc(
        "target update theta_bar <- (1 - polyak) theta_bar + polyak theta, every update", 1e-3, gt=0, le=1
    )
    lr: float = doc("Adam learning rate of the adapter (both papers: 5e-5)", 5e-5, gt=0)
    grad_clip: float = doc("gradient-norm clip (both papers: 5.0)", 5.0, gt=0)
    adapter_hidden: int = doc("width of the adapter MLP H -> M -> H (both papers: 2048)", 2048, ge=1)
    init_gain: float = doc("Xavier-uniform gain of the adapter weights (both papers: 1e-4)", 1e-4, gt=0)
    init_bias: float = doc("initial value of every adapter bias (both papers: -1e-4)", -1e-4, check=check_finite)
    logit_bias: float = doc(
        "constant added to every Q-value (RLPrompt: 0 classification, -10 style transfer)", 0.0, check=check_finite
    )
    metrics_episodes: int | None = doc(
        "loss v1_mc: log value / target value / support size on the first N episodes of each batch; null: all",
        None,
        ge=1,
    )


@dataclass(frozen=True)
class PromptLoopConfig(EpisodicConfig):
    """The episodic loop for prompts: one collection writes num_envs prompts (num_envs x prompt length env steps)."""

    replay: str = doc(
        "latest: every update reads exactly the newest batch_episodes prompts (RLPrompt's on-policy step); "
        "uniform: uniform replay of stored prompts (PIN)",
        "uniform",
        choices=("latest", "uniform"),
    )

    def check(self) -> None:
        if self.prioritized is not None:  # the prompt agent reports no per-sample TD error to prioritize by
            raise ConfigError("train.prioritized is not supported by the prompt family; leave it null")


# ----------------------------------------------------------------------------------------------- env


# the episode layout of the family (one time step): LM state, token, terminal reward, masks
EPISODE_LAYOUT_FIELDS = {
    "actions": ((), torch.int64),
    "reward": ((), torch.float32),
    "terminated": ((), torch.bool),
    "filled": ((), torch.bool),
}


def episode_layout(env: Any) -> dict[str, Any]:
    """The episode collector's ``layout`` for prompt episodes: ``obs [H]`` float32 and no info / act fields."""
    fields = {"obs": ((env.obs_spec.shape[-1],), torch.float32), **EPISODE_LAYOUT_FIELDS}
    return {"fields": fields, "info_fields": (), "act_fields": ()}


# ----------------------------------------------------------------------------------------- the agent


class PromptAgent:
    """Soft Q-learning over prompt tokens: acting, one update per batch of prompt episodes, the best prompt.

    Args:
        config: the agent's config slice.
        lm: the frozen causal policy LM (shared with the env when both run in one process).
        bos_id: the token every prompt starts from.
        device, seed: the run's (the adapter's initialisation and the exploration generator).
    """

    def __init__(self, config: PromptConfig, lm: torch.nn.Module, *, bos_id: int, device: Any = "cpu", seed: int = 0):
        self.config = config
        self.device = torch.device(device)
        self.bos_id = int(bos_id)
        vocab = int(lm.get_input_embeddings().weight.shape[0])
        for key in ("filter_top_k", "sample_top_k"):
            k = getattr(config, key)
            if k is not None and k > vocab:
                raise ConfigError(f"agent.{key}={k} exceeds the policy LM's vocabulary of {vocab} tokens")
        with torch.random.fork_rng(devices=[]):  # the adapter's init draws from the global RNG: seed it, leave it
            torch.manual_seed(seed)
            self.network = PromptQNetwork(
                lm,
                adapter_hidden=config.adapter_hidden,
                init_gain=config.init_gain,
                init_bias=config.init_bias,
                logit_bias=config.logit_bias,
                filter_top_k=config.filter_top_k,
                regularizer=make_regularizer(config.regularizer, config.temperature),
                sample_top_k=config.sample_top_k,
                metrics_episodes=config.metrics_episodes,
            ).to(self.device)
        self.optimizer = torch.optim.Adam(self.network.trainable_parameters(), lr=config.lr)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        # the best prompt on dev so far (kept here so that a resumed run remembers it)
        self.best: dict[str, Any] = {"tokens": None, "dev_accuracy": None, "dev_reward": None, "step": None}

    @property
    def vocab_size(self) -> int:
        return self.network.vocab_size

    def initial_state(self, num_envs: int) -> None:
        """Feed-forward over LM states: no recurrent state of its own (the LM's KV cache lives in the env)."""
        return None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: Any = None, *, step: int = 0, explore: bool = True):
        """Next tokens ``[N]`` int64 for LM states ``obs [N, H]``: a policy sample, or the greedy argmax.

        The sample draws from the agent's own generator (checkpointed), so a resumed run writes the same prompts.
        """
        generator = self.generator if explore else None
        return self.network.act(obs.float(), step=step, explore=explore, generator=generator), state

    def update(self, batch: dict[str, torch.Tensor], *, step: int) -> dict[str, torch.Tensor]:
        """One soft Q-learning step on prompt episodes; see the module docstring.

        batch: ``obs [B, T+1, H]``, ``actions [B, T+1]``, ``reward [B, T+1]`` (the row T is the state
        after the prompt: no action, no reward). Returns ``loss/sql``, ``loss/per_step`` and
        ``train/...`` (support size, Q, V, target V, grad norm, reward) as detached 0-dim tensors.
        """
        hidden = batch["obs"][:, :-1].float()  # [B, T, H]: the state each token was chosen from
        tokens = batch["actions"][:, :-1].long()  # [B, T]
        reward = batch["reward"].float().sum(1)  # [B]: the one terminal reward (0 at every earlier step)
        self.network.update_target(self.config.polyak)  # both papers: Polyak before every training step
        loss, metrics = self.network.loss(hidden, tokens, reward, self.config.loss, self.config.gamma)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.trainable_parameters(), self.config.grad_clip)
        self.optimizer.step()
        return {
            "loss/sql": loss.detach(),
            **metrics,
            "train/grad_norm": grad_norm.detach(),
            "train/batch_reward": reward.mean(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Adapter and target (not the frozen LM), optimizer, exploration generator, best prompt."""
        return {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "best": dict(self.best),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.generator, state["generator"])
        self.best = dict(state.get("best", self.best))

    # ---- writing and measuring prompts ---------------------------------------------------------

    @torch.no_grad()
    def write_prompts(
        self, num: int, length: int, *, explore: bool = False, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``num`` prompts of ``length`` tokens from BOS: ``tokens [num, T]``, LM states ``hidden [num, T, H]``.

        Re-reads the whole prefix each step with an all-ones attention mask (prompts are a few tokens;
        no cache to manage), as the env does with its cache. Greedy unless ``explore``.
        """
        lm = self.network.lm
        ids = torch.full((num, 1), self.bos_id, dtype=torch.long, device=self.device)
        states = []
        for _ in range(length):
            out = lm(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
            h = out.hidden_states[-1][:, -1].float()  # [num, H]
            states.append(h)
            token = self.network.act(h, explore=explore, generator=generator)
            ids = torch.cat([ids, token.unsqueeze(-1)], dim=1)
        return {"tokens": ids[:, 1:], "hidden": torch.stack(states, 1)}

    @torch.no_grad()
    def support_size(self, hidden: torch.Tensor) -> torch.Tensor:
        """Mean number of tokens with non-zero probability at the states ``hidden [N, T, H]`` (0-dim)."""
        net = self.network
        return net.regularizer.support_size(net.q_values(hidden), net.filter_mask(hidden)).float().mean()

    @torch.no_grad()
    def states(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced LM states of finished prompts: ``tokens [N, T] -> hidden [N, T, H]``, h_t = h(BOS, a_<t)."""
        bos = torch.full((tokens.shape[0], 1), self.bos_id, dtype=torch.long, device=tokens.device)
        ids = torch.cat([bos, tokens[:, :-1]], 1)  # BOS doubles as pad in GPT-2: say explicitly nothing is padded
        out = self.network.lm(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        return out.hidden_states[-1].float()

    @torch.no_grad()
    def prompt_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """The frozen policy LM's next-token logits at each prompt state: ``tokens [N, T] -> [N, T, V]`` float32.

        Row t reads BOS + a_<t, the context the filter of PIN ranks tokens in when a_t is chosen.
        """
        bos = torch.full((tokens.shape[0], 1), self.bos_id, dtype=torch.long, device=tokens.device)
        ids = torch.cat([bos, tokens[:, :-1]], 1)
        return self.network.lm(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()

    @torch.no_grad()
    def perplexity(self, tokens: torch.Tensor) -> torch.Tensor:
        """exp(-1/T sum_t log p_LM(a_t | BOS, a_<t)) of ``tokens [N, T]`` under the frozen policy LM: ``[N]``.

        Natural log, every token including the first (read after BOS alone), the same for every arm.
        """
        logp = torch.log_softmax(self.prompt_logits(tokens), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return torch.exp(-logp.mean(1))  # logp [N, T]

    @torch.no_grad()
    def lm_ranks(self, tokens: torch.Tensor) -> torch.Tensor:
        """Rank of each prompt token among the policy LM's next tokens at its state: ``[N, T]`` long, 0 = top.

        rank_t = #{v : logit_v > logit_{a_t}} at BOS + a_<t; PIN's filter allows exactly rank_t < k
        (up to ties), so the largest rank shows how much the filter restricted the prompt.
        """
        logits = self.prompt_logits(tokens)
        return (logits > logits.gather(-1, tokens.unsqueeze(-1))).sum(-1)


def build(
    config: Any, obs_spec: Any = None, action_spec: Any = None, device: Any = None, *, lm: Any = None
) -> PromptAgent:
    """The agent of ``config`` (a RunConfig): loads the policy LM of ``agent.policy_lm`` unless ``lm`` is given.

    ``obs_spec`` / ``action_spec`` are accepted for the registry contract; the LM defines both.
    """
    from envs.lm import load_tokenizer
    from envs.prompt_env import bos_token_id

    device = torch.device(config.train.device if device is None else device)
    allow = bool(config.env.options.get("allow_download", False))
    if lm is None:
        from envs.lm import load_causal_lm

        lm, tokenizer = load_causal_lm(config.agent.policy_lm, allow_download=allow, device=device)
    else:
        tokenizer = load_tokenizer(_resolved(config.agent.policy_lm), allow_download=allow)
    return PromptAgent(config.agent, lm, bos_id=bos_token_id(tokenizer), device=device, seed=config.train.seed)


def _resolved(name: str) -> str:
    from envs.lm import resolve_model

    return resolve_model(name)


def make_envs(config: Any, device: Any) -> tuple[PromptEpisodes, PromptEpisodes]:
    """(training env, evaluation env) of a RunConfig: one env serves both (evaluation only scores the greedy prompt)."""
    options = dict(config.env.options)
    if "policy_lm" in options:
        raise ConfigError("the policy LM is agent.policy_lm (the env takes it from there), not env.options.policy_lm")
    env = make_classification_env(
        config.env.num_envs, device, config.train.seed, policy_lm=config.agent.policy_lm, **options
    )
    return env, env
