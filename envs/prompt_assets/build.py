"""Build the offline prompt-optimization assets: a synthetic few-shot sentiment task, a BPE tokenizer, two tiny GPT-2s.

Run ``python -m envs.prompt_assets.build`` (about 2-4 minutes on one CPU thread; ``--out DIR`` writes
elsewhere). The build is deterministic: text comes from ``random.Random`` seeded generators, torch is
seeded and single-threaded, and the same library versions give the same bytes.

What is built, and why (the method is RLPrompt, Deng et al., EMNLP 2022, arXiv 2205.12548, and its
sparse-Tsallis successor PIN, Choi et al., ACL 2024, arXiv 2407.14733; both need a frozen policy LM,
a frozen task LM and a few-shot classification set, none of which can be downloaded offline):

1. **Sentiment reviews.** A template grammar over word lists written for this project (nouns of film
   criticism, positive / negative / neutral adjectives, adverbs, neutral filler clauses). Besides
   plain statements ("the acting was superb.") it writes the constructions that make the task hard
   for a bag-of-words reader: negation ("the plot was not good."), contrast where the last clause
   decides ("the plot was dull, but the acting was superb."; "although ..., ..."), and filler.
2. **Few-shot splits** in the LM-BFF layout (Gao, Fisch, Chen, ACL 2021): for each split seed 13,
   21, 42, 87, 100 a train and a dev set of 16 examples per class, and one shared test set
   (``test_size`` rows). Labels are flipped with probability ``label_noise`` (8 %) in every split,
   so even a perfect reader scores about 92 % and the best prompt does not saturate.
3. **Pretraining corpus** (30k lines): 40 % general text (everyday templates with names, places,
   numbers and 4,000 invented product names; the invented names give the BPE many rarely used
   fragments, the "junk tokens" PIN's filter is meant to avoid), 60 % reviews drawn with an easier
   mix of constructions than the dataset (mostly plain statements; see ``EASY_MIX``), half of them
   followed by a verdict phrase that states the true (noise-free) label with the verbalizers ("It
   was great." / "Overall it was terrible." ...). A left-to-right LM trained on it predicts
   ``" great"`` vs ``" terrible"`` after a good prompt such as "It was", which is the
   classification-by-continuation behaviour RLPrompt's reward reads.
4. **Tokenizer.** Byte-level BPE (``tokenizers``), vocabulary 4,096 with ``<|endoftext|>`` (id 0) as
   the one special token, trained on the pretraining corpus plus the dataset sentences with
   ``min_frequency=1``, so the vocabulary is filled with fragments the corpus barely uses. Saved as
   ``tokenizer.json`` and as a HuggingFace directory ``tokenizer/``.
5. **Tiny GPT-2s** (``transformers.GPT2Config``), trained from scratch with AdamW (lr 3e-3, betas
   (0.9, 0.98), weight decay 0.01, 10 % linear warmup then linear decay, gradient clip 1.0) on
   next-token prediction over random windows of the corpus as one token stream (each line preceded
   by ``<|endoftext|>``):

   * ``tiny-gpt2-task``: 2 layers, width 80, 4 heads, 64 positions; 600 steps of 32 windows of 64
     tokens (about 1.2M tokens, 4 passes over the corpus). The cross-entropy of the tokens
     ``" great"`` and ``" terrible"`` is weighted 20x (``focus_weight``): with the plain loss a
     model this small and this briefly trained did not learn the verdict at all (measured while
     designing this build: 50 % test accuracy after 1,000 steps); with the weight the shipped model
     scores about 90 % after "It was" and 64-69 % with no prompt or an unrelated one;
   * ``tiny-gpt2-policy``: 2 layers, width 64, 4 heads, 32 positions; 300 steps of 32 windows of 32
     tokens with the plain loss and another seed (a general LM for the policy's hidden states and
     prior).

   Both are saved with ``save_pretrained(..., safe_serialization=True)`` together with the tokenizer.
6. ``build_info.json`` records the sizes, settings, final losses and the test accuracy
   of a few fixed prompts under the task model (``" terrible"`` vs ``" great"`` after
   ``"{sentence} {prompt}"``), so a reader can see that the prompt matters.

Deviations from the reference: the papers use SST-2 and friends with distilgpt2 (policy) and
roberta-large (task); this is a synthetic stand-in of the same shape. The dataset has no 5-class
variant and no hand-written sanity set.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import shutil
import time
from pathlib import Path

import torch

from envs.prompt_assets import SENTIMENT_VERBALIZERS

# --------------------------------------------------------------------------------------------- words

NOUNS = (
    "film", "movie", "plot", "acting", "story", "script", "ending", "soundtrack", "cast", "direction",
    "dialogue", "camera work", "pacing", "lead", "villain", "score", "humor", "editing", "premise", "finale",
)  # fmt: skip
POSITIVE = (
    "great", "superb", "wonderful", "brilliant", "moving", "delightful", "excellent", "charming", "gripping",
    "beautiful", "fun", "fantastic", "clever", "touching", "stunning", "solid", "good", "lovely", "sharp", "fresh",
)  # fmt: skip
NEGATIVE = (
    "terrible", "awful", "dull", "boring", "bad", "weak", "clumsy", "tedious", "painful", "dreadful",
    "messy", "bland", "flat", "lazy", "poor", "forgettable", "silly", "stale", "confusing", "cheap",
)  # fmt: skip
NEUTRAL = ("long", "loud", "quiet", "colorful", "old", "typical", "short", "french", "noisy", "simple")
ADVERBS = ("really", "very", "quite", "rather", "truly", "pretty", "so", "extremely", "somewhat", "mostly")
FILLERS = (
    "i saw it last week.", "we watched it on a sunday.", "it runs about two hours.", "my friend picked it.",
    "the theater was half empty.", "i went in with no expectations.", "it came out last year.",
    "i watched it twice.", "the trailer was everywhere.", "we bought popcorn.",
)  # fmt: skip
# Verdict phrases of the pretraining corpus; {v} becomes the label's verbalizer word.
VERDICTS = (
    "It was {v}.", "Overall it was {v}.", "All in all, it was {v}.", "In short: {v}.", "My verdict: {v}.",
    "A {v} movie.", "Simply {v}.", "The result was {v}.",
)  # fmt: skip
VERBALIZER_WORDS = ("terrible", "great")  # label 0, label 1

# General-text vocabulary (no sentiment).
NAMES = ("anna", "ben", "carla", "david", "elena", "farid", "grace", "hugo", "ines", "jonas", "kira", "liam")
PLACES = ("the market", "the station", "the library", "the park", "the harbor", "the school", "the office")
CITIES = ("paris", "lagos", "lima", "oslo", "delhi", "tokyo", "cairo", "quito", "perth", "riga")
ITEMS = ("apple", "book", "ticket", "lamp", "chair", "letter", "bottle", "coat", "map", "key")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEATHER = ("cold", "warm", "rainy", "windy", "sunny", "foggy", "humid")
NUMBERS = ("two", "three", "four", "five", "six", "seven", "ten", "twelve", "twenty")
GENERAL = (
    "{name} walked to {place} on {day} with a {gadget}.",
    "the weather in {city} was {weather} on {day}.",
    "{name} bought {number} {item}s at {place}.",
    "{name} and {name2} met at {place} in {city}.",
    "the new {gadget} costs {number} dollars in {city}.",
    "{name} left the {gadget} at {place}.",
    "in {city} the {gadget} is sold at {place}.",
    "{name} read about the {gadget} on {day}.",
    "the train to {city} leaves at {number}.",
    "{name} said the {item} was {neutral}.",
    "{name} compared the {gadget} with the {gadget2}.",
)
N_PSEUDO_WORDS = 4000
SYLLABLES = ("ka", "zo", "mi", "tru", "vex", "lo", "qui", "dra", "pel", "sor", "nix", "ba", "fen", "gorb", "ulm", "yt")


@functools.lru_cache(maxsize=8)
def pseudo_words(n: int, seed: int) -> tuple[str, ...]:
    """``n`` distinct invented product names of 2-4 syllables (a fixed pool, so each one recurs in the corpus)."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return tuple(sorted(out))


# ------------------------------------------------------------------------------------------ sentences


def _clause(rng: random.Random, positive: bool) -> str:
    """ "the NOUN was [ADV] ADJ" with an adjective of the given polarity (no final period)."""
    adj = rng.choice(POSITIVE if positive else NEGATIVE)
    adv = f"{rng.choice(ADVERBS)} " if rng.random() < 0.4 else ""
    return f"the {rng.choice(NOUNS)} was {adv}{adj}"


def _negated(rng: random.Random, positive: bool) -> str:
    """A clause whose meaning is ``positive`` built by negating an adjective of the other polarity."""
    adj = rng.choice(NEGATIVE if positive else POSITIVE)
    noun = rng.choice(NOUNS)
    form = rng.randrange(3)
    if form == 0:
        return f"the {noun} was not {adj}"
    if form == 1:
        return f"the {noun} was not {rng.choice(ADVERBS)} {adj}"
    return f"i did not find the {noun} {adj}"


# Shares of the review constructions: plain, negation, contrast, two agreeing clauses, filler first.
HARD_MIX = (0.30, 0.20, 0.30, 0.10, 0.10)  # the few-shot dataset
EASY_MIX = (0.60, 0.10, 0.15, 0.10, 0.05)  # the pretraining corpus: mostly plain, so a tiny LM learns quickly


def review(rng: random.Random, mix: tuple[float, ...] = HARD_MIX) -> tuple[str, int]:
    """One synthetic review and its true label (1 positive, 0 negative).

    ``mix``: the shares of plain statements, negation, contrast (the last clause decides), two
    agreeing clauses, and a neutral filler sentence before a plain or negated clause.
    """
    label = rng.randrange(2)
    pos = bool(label)
    kind = rng.random()
    edges = [sum(mix[: i + 1]) / sum(mix) for i in range(len(mix))]
    if kind < edges[0]:
        text = _clause(rng, pos) + "."
    elif kind < edges[1]:
        text = _negated(rng, pos) + "."
    elif kind < edges[2]:
        first = _clause(rng, not pos) if rng.random() < 0.7 else _negated(rng, not pos)
        last = _clause(rng, pos) if rng.random() < 0.7 else _negated(rng, pos)
        text = f"{first}, but {last}." if rng.random() < 0.6 else f"although {first}, {last}."
    elif kind < edges[3]:
        text = f"{_clause(rng, pos)} and {_clause(rng, pos)}."
    else:
        body = _clause(rng, pos) if rng.random() < 0.5 else _negated(rng, pos)
        text = f"{rng.choice(FILLERS)} {body}."
    if rng.random() < 0.15:  # a neutral adjective somewhere, so not every adjective carries sentiment
        text = f"the {rng.choice(NOUNS)} was {rng.choice(NEUTRAL)}. " + text
    return text, label


def general_sentence(rng: random.Random, gadgets: tuple[str, ...]) -> str:
    """One sentence of sentiment-free everyday text (names, places, numbers, invented product names)."""
    names = rng.sample(NAMES, 2)
    return rng.choice(GENERAL).format(
        name=names[0], name2=names[1], place=rng.choice(PLACES), day=rng.choice(DAYS), city=rng.choice(CITIES),
        weather=rng.choice(WEATHER), number=rng.choice(NUMBERS), item=rng.choice(ITEMS),
        gadget=rng.choice(gadgets), gadget2=rng.choice(gadgets), neutral=rng.choice(NEUTRAL),
    )  # fmt: skip


def make_corpus(n_sentences: int, seed: int, verdict_share: float = 0.5, review_share: float = 0.6) -> list[str]:
    """The LM pretraining corpus: ``n_sentences`` lines, ``review_share`` of them reviews.

    A review is followed, with probability ``verdict_share``, by a verdict phrase naming its true
    label's verbalizer (" great" / " terrible"), on the same line after a space.
    """
    rng = random.Random(seed)
    gadgets = pseudo_words(N_PSEUDO_WORDS, seed + 1)
    lines = []
    for _ in range(n_sentences):
        if rng.random() < review_share:
            text, label = review(rng, EASY_MIX)
            if rng.random() < verdict_share:
                text += " " + rng.choice(VERDICTS).format(v=VERBALIZER_WORDS[label])
            lines.append(text)
        else:
            lines.append(general_sentence(rng, gadgets))
    return lines


def make_examples(n: int, rng: random.Random, label_noise: float, per_class: bool) -> list[tuple[str, int]]:
    """``n`` labeled reviews (``n`` per class when ``per_class``), labels flipped with probability ``label_noise``.

    The per-class count is of the final (noisy) labels, so a few-shot split is exactly balanced as in LM-BFF.
    """
    out: list[tuple[str, int]] = []
    counts = [0, 0]
    while len(out) < (2 * n if per_class else n):
        text, label = review(rng)
        if rng.random() < label_noise:
            label = 1 - label
        if per_class and counts[label] >= n:
            continue
        counts[label] += 1
        out.append((text, label))
    return out


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    """A ``sentence<TAB>label`` TSV with that header (no quoting; the sentences hold no tabs or newlines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("sentence\tlabel\n")
        for text, label in rows:
            f.write(f"{text}\t{label}\n")


def make_fewshot_splits(
    root: Path,
    shots: int = 16,
    test_size: int = 500,
    split_seeds: tuple[int, ...] = (13, 21, 42, 87, 100),
    label_noise: float = 0.08,
    seed: int = 0,
) -> dict[str, int]:
    """Write ``root/{shots}-shot/{shots}-{s}/{train,dev,test}.tsv`` for every split seed ``s``.

    Train and dev hold ``shots`` examples per class (drawn with ``random.Random(s)``); the test set is
    one draw of ``test_size`` rows with ``random.Random(seed)``, copied into every split as LM-BFF does
    with the original test set. Returns the row counts.
    """
    test = make_examples(test_size, random.Random(f"test-{seed}"), label_noise, per_class=False)
    for s in split_seeds:
        rng = random.Random(f"split-{seed}-{s}")
        folder = root / f"{shots}-shot" / f"{shots}-{s}"
        write_tsv(folder / "train.tsv", make_examples(shots, rng, label_noise, per_class=True))
        write_tsv(folder / "dev.tsv", make_examples(shots, rng, label_noise, per_class=True))
        write_tsv(folder / "test.tsv", test)
    return {"train": 2 * shots, "dev": 2 * shots, "test": test_size}


# ------------------------------------------------------------------------------------------ tokenizer

EOS = "<|endoftext|>"


def train_tokenizer(texts: list[str], vocab_size: int = 4096):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts`` with ``<|endoftext|>`` as id 0.

    GPT-2's scheme: bytes mapped to printable characters, words keep their leading space (``Ġ``), no
    prefix space is added, so ``" great"`` is one token whenever the corpus makes it frequent.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,  # fill the whole vocabulary: rare fragments are the junk tokens PIN's filter avoids
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def hf_tokenizer(tok):
    """Wrap a ``tokenizers.Tokenizer`` as a HuggingFace fast tokenizer (BOS = EOS = PAD = ``<|endoftext|>``)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS)


# ------------------------------------------------------------------------------------------- models


def token_blocks(texts: list[str], tokenizer, block: int) -> torch.Tensor:
    """The corpus as one id stream (each line preceded by ``<|endoftext|>``) cut into ``[n, block]`` rows."""
    eos = tokenizer.convert_tokens_to_ids(EOS)
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.append(eos)
        ids.extend(enc)
    n = len(ids) // block
    return torch.tensor(ids[: n * block], dtype=torch.long).view(n, block)


def pretrain_gpt2(
    texts: list[str],
    tokenizer,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_positions: int = 64,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    focus_tokens: tuple[str, ...] = (),
    focus_weight: float = 1.0,
):
    """A GPT-2 of the given size trained from scratch for ``steps`` AdamW steps on next-token prediction.

    Blocks of ``n_positions`` tokens are drawn uniformly (seeded). Loss: the weighted mean token
    cross-entropy ``sum_i w_i CE(logits_i, ids_{i+1}) / sum_i w_i`` with ``w_i = focus_weight`` where
    the target is one of ``focus_tokens`` (each a single token) and 1 elsewhere; the plain LM loss
    when ``focus_weight = 1``. Returns ``(model in eval mode, [loss per step])``.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    data = token_blocks(texts, tokenizer, n_positions)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warmup, max(0.0, (steps - i) / max(1, steps - warmup)))
    )
    gen = torch.Generator().manual_seed(seed)
    focus = torch.tensor([tokenizer.encode(w, add_special_tokens=False)[0] for w in focus_tokens], dtype=torch.long)
    losses = []
    model.train()
    for _ in range(steps):
        batch = data[torch.randint(len(data), (batch_size,), generator=gen)]
        logits = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits[:, :-1]
        targets = batch[:, 1:]
        targets = targets.reshape(-1)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, reduction="none")
        weight = 1.0 + (focus_weight - 1.0) * torch.isin(targets, focus)
        loss = (ce * weight).sum() / weight.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return model.eval(), losses


@torch.no_grad()
def continuation_accuracy(model, tokenizer, rows: list[tuple[str, int]], prompt: str, words=(" terrible", " great")):
    """Accuracy of argmax over the verbalizer logits after ``"{sentence} {prompt}"`` (``prompt`` may be empty).

    Independent of :mod:`envs.prompt_env` on purpose: one sequence at a time, no padding.
    """
    ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)) for w in words]
    if any(len(i) != 1 for i in ids):
        raise ValueError(f"verbalizers {words} are not single tokens of this tokenizer")
    verb = torch.tensor([i[0] for i in ids])
    correct = 0
    for text, label in rows:
        full = f"{text} {prompt}" if prompt else text
        enc = torch.tensor([tokenizer(full, add_special_tokens=False)["input_ids"]])
        logits = model(input_ids=enc).logits[0, -1]
        correct += int(int(logits[verb].argmax()) == label)
    return correct / len(rows)


# -------------------------------------------------------------------------------------------- build

PROBE_PROMPTS = ("", "It was", "Overall it was", "My verdict:", "The", "plot film", "Simply")


def read_tsv(path: Path) -> list[tuple[str, int]]:
    """Rows of a ``sentence<TAB>label`` TSV written by :func:`write_tsv` (header skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [(s, int(y)) for s, y in (line.rsplit("\t", 1) for line in lines)]


def build(
    out: Path,
    *,
    corpus_size: int = 30_000,
    vocab_size: int = 4096,
    test_size: int = 500,
    task_steps: int = 600,
    policy_steps: int = 300,
    task_width: int = 80,
    policy_width: int = 64,
    batch_size: int = 32,
    seed: int = 0,
    log=print,
) -> dict:
    """Write every asset into ``out`` (see the module docstring) and return the build record."""
    torch.set_num_threads(1)  # determinism, and 1 thread is faster than 2 for models this small
    start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "synthetic-sentiment"
    counts = make_fewshot_splits(data_root, test_size=test_size, seed=seed)
    corpus = make_corpus(corpus_size, seed)
    dataset_text = [s for p in sorted(data_root.rglob("*.tsv")) for s, _ in read_tsv(p)]
    tok = train_tokenizer(corpus + dataset_text, vocab_size)
    tok.save(str(out / "tokenizer.json"))
    tokenizer = hf_tokenizer(tok)
    for d in ("tokenizer", "tiny-gpt2-task", "tiny-gpt2-policy"):
        shutil.rmtree(out / d, ignore_errors=True)
    tokenizer.save_pretrained(out / "tokenizer")
    log(f"corpus {len(corpus)} lines, tokenizer {len(tokenizer)} tokens ({time.time() - start:.0f}s)")

    record: dict = {
        "seed": seed, "corpus_sentences": len(corpus), "vocab_size": len(tokenizer), "dataset_rows": counts,
        "label_noise": 0.08, "dataset_mix": HARD_MIX, "corpus_mix": EASY_MIX, "models": {},
    }  # fmt: skip
    specs = {
        "tiny-gpt2-task": dict(
            n_embd=task_width,
            n_positions=64,
            steps=task_steps,
            seed=seed + 1,
            focus_tokens=SENTIMENT_VERBALIZERS,
            focus_weight=20.0,
        ),  # fmt: skip
        "tiny-gpt2-policy": dict(n_embd=policy_width, n_positions=32, steps=policy_steps, seed=seed + 2),
    }
    test_rows = read_tsv(data_root / "16-shot" / "16-13" / "test.tsv")
    for name, spec in specs.items():
        t0 = time.time()
        model, losses = pretrain_gpt2(corpus, tokenizer, n_layer=2, n_head=4, batch_size=batch_size, lr=3e-3, **spec)
        model.save_pretrained(out / name, safe_serialization=True)
        tokenizer.save_pretrained(out / name)
        tail = losses[-20:]
        entry = {
            **spec, "n_layer": 2, "n_head": 4, "batch_size": batch_size, "lr": 3e-3,
            "params": sum(p.numel() for p in model.parameters()),
            "first_loss": round(losses[0], 4), "final_loss_mean20": round(sum(tail) / len(tail), 4),
        }  # fmt: skip
        if name == "tiny-gpt2-task":
            entry["test_accuracy_by_prompt"] = {
                p: round(continuation_accuracy(model, tokenizer, test_rows, p), 4) for p in PROBE_PROMPTS
            }
        record["models"][name] = entry
        log(f"{name} ({time.time() - t0:.0f}s): {json.dumps(entry)}")
    log(f"built {out} in {time.time() - start:.0f}s")
    # No timings in the record: a rebuild with the same library versions writes the same bytes.
    (out / "build_info.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m envs.prompt_assets.build [--out DIR] [--seed S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build(args.out, seed=args.seed)


if __name__ == "__main__":
    main()
