"""Measuring prompts: dev / test accuracy, perplexity under the policy LM, LM ranks, whole-word
fraction, sparsemax support; the greedy evaluation of training, the run's final report, evaluate.py's
nominal score (``play_episodes``) and its ``--prompt`` condition (:class:`PromptReport`)."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import torch

from agents.prompt.agent import PromptAgent, make_envs

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
            logger.text("eval/best_prompt", f"{measures['prompt']} (dev accuracy {acc:.3f}, step {step})", step)
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


def play_episodes(
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
