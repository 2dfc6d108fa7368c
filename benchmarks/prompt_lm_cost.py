"""Per-step cost of RLPrompt / PIN / PIN without the filter on the real SmolLM2-135M (``*/tweets-smollm``).

Measures, on one CPU thread by default (``--threads``), with the presets' own agents and env:

* ``load_s``: loading the converted model from the cache folder (the first-ever conversion is
  timed by ``python -c "from envs.lm import packaged_model_dir; packaged_model_dir('smollm2-135m')"``);
* ``reward_s``: the reward of one training step, 16 prompts x ``batch_examples`` sentences, with the
  sentence KV caches reused (:class:`envs.prompt_env.PrefixCachedScorer`, the presets' setting) and,
  with ``--uncached``, recomputed every time (:class:`envs.prompt_env.ClassificationScorer`);
* ``rollout_s``: writing 16 prompts of 5 tokens with the policy (KV cache, filter, sampling);
* ``update_s``: one soft Q-learning update on the arm's minibatch from stored LM states;
* ``recompute_states_s``: what the update would add if the replayed prompts' LM states were
  recomputed by teacher forcing instead of stored (the LM is frozen, so storing them is exact);
* ``step_s``: reward + rollout + update, the cost of one training step (evaluation every 10 / 20 steps
  adds a dev scoring of one prompt, ``eval_s``).

Each timing is the median of ``--repeats`` calls after one warm-up call.

    nice -n 5 python benchmarks/prompt_lm_cost.py --out benchmarks/results/prompt_lm_cost.json
    nice -n 5 python benchmarks/prompt_lm_cost.py --uncached 8 32   # also the uncached reward (slow)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, nargs="+", default=[8, 32], help="training sentences per step")
    parser.add_argument(
        "--uncached", type=int, nargs="*", default=[], help="also time the uncached reward for these sentence counts"
    )
    parser.add_argument("--pin-batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from agents.prompt.agent import build, make_envs
    from agents.prompt.presets import PRESETS
    from envs.lm import load_causal_lm
    from envs.prompt_env import ClassificationScorer, PrefixCachedScorer, evaluate_prompt

    out: dict = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "repeats": args.repeats,
    }
    t0 = time.perf_counter()
    lm, tok = load_causal_lm("smollm2-135m")
    out["load_s"] = round(time.perf_counter() - t0, 2)
    print(f"load {out['load_s']} s", flush=True)

    config = PRESETS["pin/tweets-smollm"]
    env, _ = make_envs(config, "cpu")
    data = env.reward_fn.data
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(0, lm.config.vocab_size, (16, 5), generator=gen)
    cached = PrefixCachedScorer(lm, tok, (" terrible", " great"), prompt_tokenizer=tok)
    plain = ClassificationScorer(lm, tok, (" terrible", " great"), prompt_tokenizer=tok)
    out["reward_s"] = {}
    for m in args.examples:
        sentences = data.sentences[:m]
        row = {"prefix_cached": round(timed(lambda s=sentences: cached.class_probs(prompts, s), args.repeats), 3)}
        if m in args.uncached:
            row["uncached"] = round(timed(lambda s=sentences: plain.class_probs(prompts, s), 1), 3)
        out["reward_s"][f"16x{m}"] = row
        print(f"reward 16 prompts x {m} sentences: {row}", flush=True)
    out["eval_s"] = round(timed(lambda: evaluate_prompt(cached, prompts[0], env.eval_splits["dev"]), args.repeats), 3)

    arms = {
        "rlprompt": (PRESETS["rlprompt/tweets-smollm"], [16]),
        "pin": (PRESETS["pin/tweets-smollm"], args.pin_batches),
        "pin-nofilter": (PRESETS["pin-nofilter/tweets-smollm"], args.pin_batches),
    }
    m_step = config.env.options["batch_examples"]
    reward_step = out["reward_s"].get(f"16x{m_step}", {}).get("prefix_cached")
    out["arms"] = {}
    for arm, (cfg, batches) in arms.items():
        agent = build(cfg, device="cpu", lm=lm)
        rollout = timed(lambda a=agent: a.network.rollout(16, 5, a.bos_id, generator=a.generator), args.repeats)
        written = agent.network.rollout(max(batches), 5, agent.bos_id, generator=agent.generator)
        row = {"rollout_s": round(rollout, 3), "update_s": {}, "recompute_states_s": {}}
        for b in batches:
            h, tk = written["hidden"][:b], written["tokens"][:b]
            batch = {
                "obs": torch.cat([h, h[:, -1:]], 1),
                "actions": torch.cat([tk, tk[:, -1:]], 1),
                "reward": torch.cat([torch.zeros(b, 5), torch.randn(b, 1, generator=gen)], 1),
            }
            row["update_s"][b] = round(timed(lambda bt=batch, a=agent: a.update(bt, step=0), args.repeats), 3)
            row["recompute_states_s"][b] = round(timed(lambda t=tk, a=agent: a.states(t), args.repeats), 3)
        b0 = cfg.train.batch_episodes
        if reward_step is not None:
            row["step_s"] = round(reward_step + row["rollout_s"] + row["update_s"][b0], 3)
        out["arms"][arm] = row
        print(f"{arm}: {row}", flush=True)
        del agent
    env.close()
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
