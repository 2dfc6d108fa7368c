"""Discrete prompt optimization by soft Q-learning: RLPrompt and its sparse Tsallis variant (PIN).

RLPrompt (Deng et al., EMNLP 2022, arXiv 2205.12548) writes a fixed-length prompt token by token
with a frozen causal LM plus a small trainable adapter whose tied output head gives one Q-value per
vocabulary token, and trains it with soft Q-learning (path consistency) on a reward that arrives
after the last token. PIN (Choi et al., ACL 2024, arXiv 2407.14733) swaps softmax / logsumexp for
sparsemax / spmax (sparse Tsallis entropy) and keeps only the policy LM's own top-k next tokens.

Modules: ``sparse`` (sparsemax, spmax, the softmax / sparsemax regularizer strategies, the LM top-k
token filter), ``losses`` (the v1 / v1_mc / v2 / v3 / v2_v3 losses and the Polyak target), ``policy``
(frozen LM + adapter + tied head, batched acting). Nothing heavy is imported here.
"""
