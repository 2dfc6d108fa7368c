"""The LM-prompt agent: RLPrompt and sparse-Tsallis RLPrompt (PIN) as presets of one soft Q-learning agent.

Papers: Deng et al., "RLPrompt: Optimizing Discrete Text Prompts with Reinforcement Learning",
EMNLP 2022 (arXiv 2205.12548); Choi et al., "Hard Prompts Made Interpretable: Sparse Entropy
Regularization for Prompt Tuning with RL" (PIN), ACL 2024 (arXiv 2407.14733).

One agent (:class:`PromptAgent`) writes fixed-length prompts token by token with
:class:`agents.prompt.policy.PromptQNetwork` (frozen causal LM, trainable adapter, frozen tied head,
``Q(s_t, .) = E MLP(h_t)``) and learns from whole prompt episodes on the suite's episodic loop
(:func:`agents.core.episodes.train_episodic`). Three switches separate the methods:

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

The family's run (:func:`run`) drives :func:`train_episodic` with the prompt layout
(:data:`EPISODE_LAYOUT`), evaluates the greedy prompt on the dev split every ``eval_every`` env
steps (the best dev prompt so far is kept in the agent's state, shown above the progress bar and
written to TensorBoard as text) and ends with ``prompt_report.json`` in the run directory: the best
and the final greedy prompt, their dev and test accuracy, the sparsemax / softmax support size,
the perplexity of the prompt under the policy LM, the LM rank of each of its tokens (the quantity
PIN's filter bounds) and its whole-word fraction. ``evaluate.py
RUN_DIR`` scores the greedy prompt on the test split (:func:`episode_returns`, return = test accuracy
in percent) and ``--prompt`` prints the report.

Deviations from the reference: RLPrompt's on-policy step (the batch just sampled) is the loop's
``replay=latest`` (every update reads exactly the newest ``batch_episodes`` episodes); PIN's replay
stores LM states and recomputes online and target Q from them, as here. The best prompt is chosen
by dev accuracy, ties broken by the raw dev reward. Prompts are written by feeding token ids, never
re-tokenised text. The naturalness measures (perplexity under the policy LM, whole-word fraction
against the dataset's own words) are this project's: the papers' measure was not recovered.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.core.buffers import TransitionBuffer
from agents.core.checkpoint import restore_generator
from agents.core.config import AgentConfig, ConfigError, check_finite, doc
from agents.core.loops import EpisodicConfig
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
    """``train_episodic``'s ``layout`` for prompt episodes: ``obs [H]`` float32 and no info / act fields."""
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


# -------------------------------------------------------------------------------------- measurements


# English word lists of the shipped synthetic corpus (envs/prompt_assets/build.py); its invented product
# names (e.g. "dranix") are deliberately not words
_SHIPPED_WORD_LISTS = (
    "NOUNS", "POSITIVE", "NEGATIVE", "NEUTRAL", "ADVERBS", "FILLERS", "VERDICTS", "NAMES", "PLACES", "CITIES",
    "ITEMS", "DAYS", "WEATHER", "NUMBERS", "GENERAL",
)  # fmt: skip


def words_of(texts: Any) -> set[str]:
    """Lowercase alphabetic words of ``texts`` (``{placeholders}`` of templates left out)."""
    words: set[str] = set()
    for text in texts:
        words.update(re.findall(r"[a-z]+", re.sub(r"\{[a-z0-9_]+\}", " ", text.lower())))
    return words


def env_splits(env: Any) -> list[Any]:
    """Every text split a prompt env holds: dev, test and the reward's training data."""
    splits = [*env.eval_splits.values()]
    if hasattr(env.reward_fn, "data"):
        splits.append(env.reward_fn.data)
    return splits


def dictionary_words(splits: Any) -> set[str]:
    """The whole-word dictionary: the words of ``splits`` (e.g. :func:`env_splits`) and of the shipped
    corpus's English word lists (so that e.g. " verdict" counts although no test sentence has it)."""
    from envs.prompt_assets import build as shipped

    words = words_of(sentence for split in splits for sentence in split.sentences)
    return words | words_of(text for name in _SHIPPED_WORD_LISTS for text in getattr(shipped, name, ()))


def whole_word_fraction(pieces: list[str], words: set[str]) -> float:
    """Fraction of prompt tokens that are whole dictionary words.

    A token counts when it starts a word (leading space, or the prompt's first token), the next token
    does not continue it (there is none, or it starts with a space or a non-alphanumeric character such
    as ``:``), and its text is an alphabetic word of ``words`` (case-insensitive). Fragments such as
    ``" gr"`` + ``"eat"`` do not count.
    """
    if not pieces:
        return 0.0
    count = 0
    for i, piece in enumerate(pieces):
        starts = i == 0 or piece.startswith(" ")
        following = pieces[i + 1] if i + 1 < len(pieces) else " "
        ends = following[:1] == " " or not following[:1].isalnum()
        word = piece.strip().lower()
        count += int(starts and ends and word.isalpha() and word in words)
    return count / len(pieces)


def prompt_measures(agent: PromptAgent, env: Any, tokens: torch.Tensor, splits=("dev", "test")) -> dict[str, Any]:
    """Text, accuracy and raw reward per split, support size, perplexity, whole-word fraction of a prompt ``[T]``."""
    from envs.prompt_env import evaluate_prompt

    tokens = tokens.to(agent.device).view(1, -1)
    tokenizer = env.scorer.prompt_tokenizer
    pieces = [tokenizer.decode([t]) for t in tokens[0].tolist()]
    hidden = agent.states(tokens)
    out: dict[str, Any] = {
        "prompt": env.scorer.prompt_text(tokens[0].tolist()),
        "tokens": tokens[0].tolist(),
        "pieces": pieces,
    }
    for split in splits:
        score = evaluate_prompt(env.scorer, tokens[0].cpu(), env.eval_splits[split])
        out[f"{split}_accuracy"], out[f"{split}_reward"] = score["accuracy"], score["raw_reward"]
    out["support_size"] = float(agent.support_size(hidden))
    out["perplexity"] = float(agent.perplexity(tokens)[0])
    out["lm_ranks"] = agent.lm_ranks(tokens)[0].tolist()
    out["whole_word_fraction"] = whole_word_fraction(pieces, dictionary_words(env_splits(env)))
    return out


def evaluate_greedy(agent: PromptAgent, env: Any, step: int, logger: Any = None) -> dict[str, torch.Tensor]:
    """Score the greedy prompt on dev, update the best prompt, and return the ``eval/...`` metrics.

    ``eval/mean_reward`` is the dev accuracy in percent (the suite's evaluation tag; the progress bar
    shows it), ``eval/dev_reward`` the raw gap reward R.
    """
    written = agent.write_prompts(1, env.prompt_length, explore=False)
    measures = prompt_measures(agent, env, written["tokens"][0], splits=("dev",))
    acc, reward = measures["dev_accuracy"], measures["dev_reward"]
    best = agent.best
    if best["tokens"] is None or (acc, reward) > (best["dev_accuracy"], best["dev_reward"]):
        agent.best = {"tokens": measures["tokens"], "dev_accuracy": acc, "dev_reward": reward, "step": int(step),
                      "perplexity": measures["perplexity"]}  # fmt: skip
        if logger is not None:
            logger.message(f"step {step:,}: best prompt so far {measures['prompt']!r} (dev accuracy {acc:.3f})")
            text = getattr(logger, "text", None)
            if text is not None:
                text("eval/best_prompt", f"{measures['prompt']} (dev accuracy {acc:.3f}, step {step})", step)
    return {
        "eval/mean_reward": torch.tensor(100.0 * acc),
        "eval/dev_accuracy": torch.tensor(acc),
        "eval/dev_reward": torch.tensor(reward),
        "eval/support_size": torch.tensor(measures["support_size"]),
        "eval/perplexity": torch.tensor(measures["perplexity"]),
        "eval/whole_word_fraction": torch.tensor(measures["whole_word_fraction"]),
        "eval/best_dev_accuracy": torch.tensor(agent.best["dev_accuracy"]),
        "eval/best_perplexity": torch.tensor(agent.best.get("perplexity", math.nan)),  # of the best dev prompt so far
    }


def final_report(agent: PromptAgent, env: Any, config: Any, step: int) -> dict[str, Any]:
    """The run's report: the best dev prompt and the final greedy prompt, each on dev and test, with the measures."""
    final = agent.write_prompts(1, env.prompt_length, explore=False)["tokens"][0]
    best_tokens = torch.tensor(agent.best["tokens"]) if agent.best["tokens"] is not None else final
    return {
        "algo": config.algo,
        "regularizer": config.agent.regularizer,
        "filter_top_k": config.agent.filter_top_k,
        "loss": config.agent.loss,
        "step": int(step),
        "best": {**prompt_measures(agent, env, best_tokens), "selected_at_step": agent.best["step"]},
        "final": prompt_measures(agent, env, final),
        "note": "support size: tokens with non-zero probability under the final policy along the prompt's states",
    }


# ---------------------------------------------------------------------------------------------- runs


def _latest_buffer_class():
    from agents.core.episodes import EpisodeBuffer

    class LatestEpisodeBuffer(EpisodeBuffer):
        """An episode buffer whose ``sample`` returns the newest episodes: RLPrompt's on-policy update.

        ``sample(batch)`` gives the first ``batch`` of the episodes inserted by the last ``extend``
        (cycled if it asks for more), in insertion order; it draws nothing from the generator and adds
        no ``index`` / ``weights`` entries (it is not a prioritized batch).
        """

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.latest = torch.zeros(0, dtype=torch.long, device=self.device)

        def extend(self, rows: dict[str, torch.Tensor]) -> None:
            n = next(iter(rows.values())).shape[0]
            self.latest = (torch.arange(n, device=self.device) + self.cursor) % self.capacity
            super().extend(rows)

        def sample(self, batch_size: int, *, step: int = 0) -> dict[str, torch.Tensor]:
            if self.latest.numel() == 0:
                raise RuntimeError("cannot sample from an empty buffer")
            index = self.latest[torch.arange(batch_size, device=self.device) % self.latest.numel()]
            return {name: store.index_select(0, index) for name, store in self.storage.items()}

        def state_dict(self) -> dict[str, Any]:
            return {**super().state_dict(), "latest": self.latest.clone()}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            super().load_state_dict(state)
            self.latest = state["latest"].to(self.device).clone()

    return LatestEpisodeBuffer


def make_buffer(config: Any, env: Any, fields: dict) -> TransitionBuffer:
    """The episode buffer of the run: uniform replay, or the newest episodes when ``train.replay = latest``."""
    from agents.core.episodes import EpisodeBuffer

    cfg = config.train
    kind = _latest_buffer_class() if getattr(cfg, "replay", "uniform") == "latest" else EpisodeBuffer
    return kind(fields, cfg.buffer_episodes, env.episode_limit + 1, env.device, cfg.seed)


def run(config: Any, run_dir: Path, *, resume: bool = False, logger_factory: Any = None) -> Path:
    """Train (or resume) ``config`` in ``run_dir``: config.json, TensorBoard + metrics.jsonl, checkpoints,
    the best prompt above the progress bar, and ``prompt_report.json`` at the end."""
    from agents.core.episodes import train_episodic
    from agents.core.logger import Logger
    from agents.core.loops import check_finite as check_losses
    from agents.core.run import prepare_run_dir

    cfg = config.train
    run_dir = Path(run_dir)
    checkpointer, checkpoint = prepare_run_dir(config, run_dir, resume=resume, device=cfg.device)
    env, _ = make_envs(config, cfg.device)
    agent = build(config, device=cfg.device, lm=env.policy_lm)
    start = int(checkpoint["step"]) if checkpoint else 0
    logger = (logger_factory or (lambda: Logger(run_dir, cfg.total_steps, start, progress=cfg.progress)))()
    layout = episode_layout(env)

    def log(step: int, metrics: dict[str, torch.Tensor]) -> None:
        check_losses(logger.log(step, {**metrics, **env.take_stats()}), step)

    try:
        summary = train_episodic(
            env,
            agent,
            cfg,
            buffer=make_buffer(config, env, layout["fields"]),
            log=log,
            save=checkpointer.save,
            resume=checkpoint,
            layout=layout,
            evaluate_fn=lambda _collector, step: evaluate_greedy(agent, env, step, logger),
        )
        report = final_report(agent, env, config, summary["steps"])
        (run_dir / "prompt_report.json").write_text(json.dumps(report, indent=2) + "\n")
        best = report["best"]
        logger.message(
            f"best prompt {best['prompt']!r}: dev accuracy {best['dev_accuracy']:.3f}, test accuracy "
            f"{best['test_accuracy']:.3f}, perplexity {best['perplexity']:.1f}, whole words "
            f"{best['whole_word_fraction']:.2f}, support size {best['support_size']:.1f}"
        )
    finally:
        logger.close()
        env.close()
    return run_dir


def episode_returns(
    config: Any, agent: PromptAgent, episodes: int = 10, seed: int = 100_000, *, explore: bool = False
) -> dict[str, torch.Tensor]:
    """evaluate.py's nominal score: ``{"returns": [episodes], "lengths": [episodes]}`` on the TEST split.

    A return is the test accuracy of one prompt in percent. Greedy: the one greedy prompt (every
    episode is the same); ``explore``: ``episodes`` prompts sampled from the policy (generator seeded
    with ``seed``).
    """
    env, _ = make_envs(dataclasses.replace(config, env=dataclasses.replace(config.env, num_envs=1)), agent.device)
    try:
        generator = torch.Generator(device=agent.device).manual_seed(seed)
        count = episodes if explore else 1
        written = agent.write_prompts(count, env.prompt_length, explore=explore, generator=generator)
        from envs.prompt_env import evaluate_prompt

        scores = [evaluate_prompt(env.scorer, p.cpu(), env.eval_splits["test"])["accuracy"] for p in written["tokens"]]
        returns = torch.tensor(scores, dtype=torch.float32).mul(100.0).expand(episodes if not explore else count)
        return {"returns": returns.clone(), "lengths": torch.full((episodes,), env.prompt_length, dtype=torch.long)}
    finally:
        env.close()


def prompt_evaluation(config: Any, agent: PromptAgent) -> dict[str, Any]:
    """The greedy prompt's full report on dev and test (evaluate.py ``--prompt``); also the best dev prompt kept."""
    env, _ = make_envs(dataclasses.replace(config, env=dataclasses.replace(config.env, num_envs=1)), agent.device)
    try:
        greedy = agent.write_prompts(1, env.prompt_length, explore=False)["tokens"][0]
        out = {"greedy": prompt_measures(agent, env, greedy)}
        if agent.best["tokens"] is not None:
            best = prompt_measures(agent, env, torch.tensor(agent.best["tokens"]))
            out["best"] = {**best, "step": agent.best["step"]}
        return out
    finally:
        env.close()


class PromptReport:
    """The greedy prompt (and the best dev prompt kept) of a prompt run, measured: by itself on prompt runs.

    ``evaluate.py RUN_DIR`` prints it for every prompt run; ``--prompt`` asks for it (and refuses other runs).

    Dev and test accuracy and raw reward, support size, perplexity under the policy LM and whole-word
    fraction; the report's ``prompt`` section.
    """

    key = "prompt"

    @staticmethod
    def add_arguments(parser: Any) -> None:
        parser.add_argument(
            "--prompt",
            action="store_true",
            help="prompt runs (pin, rlprompt): the greedy and the best dev prompt with dev / test accuracy, "
            "support size, perplexity and whole-word fraction",
        )

    def __init__(self, explicit: bool = True):
        self.explicit = explicit  # False: not asked for, runs by itself on prompt runs only
        self.active = True

    @classmethod
    def from_args(cls, args: Any) -> list[PromptReport]:
        return [cls(explicit=bool(getattr(args, "prompt", False)))]

    def check(self, context: Any) -> None:
        self.active = isinstance(context.run.agent, PromptAgent)
        if not self.active and self.explicit:
            from envs import EnvError

            raise EnvError(f"--prompt needs a prompt run (pin, rlprompt), not {context.run.config.algo}")

    def run(self, context: Any) -> dict[str, Any] | None:
        if not self.active:
            return None  # evaluate.py leaves the section out
        result = prompt_evaluation(context.run.config, context.run.agent)
        for name, m in result.items():
            print(
                f"{name} prompt {m['prompt']!r}: dev accuracy {m['dev_accuracy']:.3f}, test accuracy "
                f"{m['test_accuracy']:.3f}, support size {m['support_size']:.1f}, perplexity {m['perplexity']:.1f}, "
                f"whole words {m['whole_word_fraction']:.2f}"
            )
        return result
