"""Training a GPT on text: AdamW, warm-up + cosine, clipping, bits per character; kind ``gpt``.

The loop minimises the next-token cross-entropy $-\\frac1{BT}\\sum_{b,t}\\log
p_\\theta(x_{b,t+1} \\mid x_{b,\\le t})$ on random windows of the training split with AdamW
(Loshchilov & Hutter 2019; weight decay on matrices only, as GPT-2 and nanoGPT), a linear
warm-up and a cosine decay of the learning rate to a tenth of its peak (Loshchilov &
Hutter 2017), and the gradient's norm clipped to 1 (Pascanu et al. 2013).

Models with different tokenizers are compared in **bits per character**: the nats a
model spends on a text, over $\\ln 2$ times the text's characters
(:func:`bits_per_char`), which does not depend on how the text was cut into tokens.

:class:`LanguageModel` is a trained GPT with its tokenizer, the model of kind ``gpt``
of :mod:`aigc_course.kinds`: its ``sample`` returns token ids and
:meth:`LanguageModel.generate_text` text. No checkpoint ships (the corpus depends on the
Python version, and the cpu profile trains one in about a minute);
:func:`~aigc_course.kinds.load_or_train` caches what it trains.

Simplified: no dropout, no gradient accumulation, fp32 (the chapter on training at
scale adds mixed precision and ``torch.compile``), the data held as one tensor of ids.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from aigc_course.checkpoint import read_checkpoint, save_checkpoint
from aigc_course.kinds import ModelKind, Trained
from aigc_course.models.gpt import GPT, GPTConfig, generate
from aigc_course.profiles import TextProfile
from aigc_course.text.corpus import corpus_text, split_text
from aigc_course.text.tokenizers import (
    TOKENIZERS,
    ByteBPE,
    CharTokenizer,
    make_tokenizer,
    tokenizer_from_config,
)
from aigc_course.train.ema import EMA
from aigc_course.train.engine import (
    OPTIMISERS,
    Engine,
    Optimiser,
    RunOptions,
    build_optimiser,
    fingerprint,
    local_device,
)
from aigc_course.utils import Timer, num_threads, seeded

Tensor = torch.Tensor
NAME = "gpt"
#: ``aigc-course generate --max-new-tokens`` at most this many
MAX_NEW_TOKENS = 10_000
LN2 = math.log(2.0)


@dataclass
class GPTTrainConfig:
    """One training run (pretraining or fine-tuning).

    Attributes:
        steps: optimisation steps (fixed: contention never changes results).
        batch_size: windows per step.
        lr: peak learning rate; ``min_lr_ratio`` of it at the end of the cosine.
        warmup: steps of linear warm-up (Goyal et al. 2017).
        weight_decay: AdamW's decoupled decay of the weight matrices.
        betas: AdamW's $\\beta_1, \\beta_2$ (0.99: small batches, as nanoGPT's char recipe).
        grad_clip: the largest gradient norm (0: no clipping).
        eval_every: validation bits per character every this many steps (0: only at the
            end), on ``eval_tokens`` tokens of the validation split (``None``: all).
        window: train on random windows of this many tokens (``None``: ``block_size``);
            shorter windows learn faster per token at first, and the model is then used
            with that context (:attr:`LanguageModel.context`).
        seed: initialisation and windows.
        device: ``"cpu"`` or ``"cuda"``.
        progress: show a ``tqdm`` bar.
        optimizer: ``"adamw"`` (decoupled decay), ``"adam"`` (decay as an L2 term) or
            ``"sgd"`` (heavy-ball momentum ``momentum``): see
            :func:`~aigc_course.train.engine.build_optimiser`.
        schedule: ``"cosine"`` (warm-up, then a cosine to ``min_lr_ratio``) or
            ``"constant"`` (warm-up, then ``lr``).
        ema_decay: an EMA of the weights (0: none); the trained model and its validation
            scores are then the EMA's.
    """

    steps: int = 1500
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_tokens: int | None = 8192
    window: int | None = None
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    optimizer: Optimiser = "adamw"
    momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.optimizer not in OPTIMISERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: "
                             f"{', '.join(OPTIMISERS)}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: cosine, constant")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"need lr > 0 and 0 <= min_lr_ratio <= 1, got {self.lr}, "
                             f"{self.min_lr_ratio}")


def learning_rate(step: int, config: GPTTrainConfig) -> float:
    """The learning rate of step ``step`` (0-based): linear warm-up, then a cosine.

    $\\eta_s = \\eta\\,(s+1)/W$ for $s < W$; after it
    $\\eta_{min} + \\tfrac12(1 + \\cos(\\pi\\,\\frac{s - W}{S - W}))(\\eta - \\eta_{min})$.
    """
    warmup = min(config.warmup, config.steps - 1)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "constant":
        return config.lr
    progress = (step - warmup) / max(1, config.steps - 1 - warmup)
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))) * (config.lr - low)


@dataclass
class TextData:
    """A text cut into splits and encoded: what a GPT trains and is scored on.

    Attributes:
        tokenizer: fitted on the text (char: its every character; bpe: the train split).
        train, val, test: token ids ``(N,)`` of each split.
        chars: characters of each split.
        source: the corpus name or file.
    """

    tokenizer: CharTokenizer | ByteBPE
    train: Tensor
    val: Tensor
    test: Tensor
    chars: dict[str, int]
    source: str

    def split(self, name: str) -> Tensor:
        """The ids of split ``name`` (``train``, ``val``, ``test``)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; valid: train, val, test")
        return getattr(self, name)


def prepare_text(source: str | Path = "pydoc", tokenizer: str = "char",
                 vocab_size: int = 512) -> TextData:
    """Load a corpus (or UTF-8 file), split it and encode it.

    The character vocabulary is every character of the whole text (only the set of
    characters leaks from val and test, so scoring never meets an unknown one); BPE
    merges are learnt on the train split only.

    Raises:
        ValueError: an unknown corpus or tokenizer, an empty, non-UTF-8 or too short file.
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; valid: {', '.join(TOKENIZERS)}")
    text = corpus_text(source)
    splits = split_text(text)
    tok = make_tokenizer(tokenizer, text if tokenizer == "char" else splits.train,  # type: ignore[arg-type]
                         vocab_size)
    ids = {name: torch.tensor(tok.encode(getattr(splits, name)), dtype=torch.long)
           for name in ("train", "val", "test")}
    return TextData(tok, ids["train"], ids["val"], ids["test"],
                    {name: len(getattr(splits, name)) for name in ("train", "val", "test")},
                    str(source))


def token_chars(tokenizer: CharTokenizer | ByteBPE) -> Tensor:
    """Characters each token id stands for ``(V,)``: its UTF-8 bytes that start a character.

    A byte-level token may hold part of a character; counting lead bytes (not of the form
    ``10xxxxxx``) gives each character to exactly one token, so the counts of a text's
    tokens add up to its length.
    """
    if isinstance(tokenizer, ByteBPE):
        counts = [sum((byte & 0xC0) != 0x80 for byte in tokenizer.token_bytes(i))
                  for i in range(tokenizer.vocab_size)]
    else:
        counts = [1] * tokenizer.vocab_size
    return torch.tensor(counts, dtype=torch.long)


@torch.no_grad()
def bits_per_char(model: GPT, ids: Tensor, chars: Tensor, *, max_tokens: int | None = None,
                  batch_size: int = 32, window: int | None = None) -> float:
    """Bits per character of the text ``ids`` under ``model``.

    $\\mathrm{bpc} = \\frac{-\\sum_t \\log p_\\theta(x_t \\mid x_{<t})}{\\ln 2 \\cdot
    \\#\\mathrm{chars}}$ over consecutive windows of ``block_size`` predictions (each window
    starts with a fresh context, so a token sees on average half a block; every token
    after the first is predicted once).

    Args:
        model: the GPT.
        ids: token ids ``(N,)``, ``N >= 2``.
        chars: :func:`token_chars` of the tokenizer.
        max_tokens: score about this many predictions, in windows spread evenly over the
            text (``None``: all).
        batch_size: windows per forward pass.
        window: predictions per window (``None``: ``block_size``).
    """
    if ids.numel() < 2:
        raise ValueError("bits_per_char needs at least 2 tokens")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    T = min(window or model.config.block_size, model.config.block_size)
    n = ids.numel() - 1                                             # predictions
    starts = list(range(0, n, T))
    if max_tokens is not None and max_tokens < n:                  # windows spread evenly
        keep = max(1, math.ceil(max_tokens / T))
        starts = [starts[int(i)] for i in torch.linspace(0, len(starts) - 1, keep).round()]
    nats, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        chunk = starts[i:i + batch_size]
        lengths = [min(T, n - s) for s in chunk]
        x = torch.zeros(len(chunk), max(lengths), dtype=torch.long)
        y = torch.full((len(chunk), max(lengths)), -1, dtype=torch.long)
        for row, (s, length) in enumerate(zip(chunk, lengths, strict=True)):
            x[row, :length] = ids[s:s + length]
            y[row, :length] = ids[s + 1:s + 1 + length]
        logits, _, _ = model(x.to(device))
        nll = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1).cpu(),
                                                y.flatten(), ignore_index=-1,
                                                reduction="sum")
        nats += float(nll)
        count += int(chars[y[y >= 0]].sum())
    model.train(was_training)
    return nats / (LN2 * count)


def random_windows(ids: Tensor, batch_size: int, block_size: int,
                   generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows: inputs ``x`` and next tokens ``y``, each ``(B, T)``."""
    if ids.numel() <= block_size:
        raise ValueError(f"the text has {ids.numel()} tokens, fewer than block_size + 1 "
                         f"({block_size + 1}); use a longer text or a shorter block")
    starts = torch.randint(ids.numel() - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    windows = ids[starts[:, None] + offsets]                       # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


def example_batches(examples: list[Tensor], prompt_lengths: list[int], batch_size: int,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A batch of whole examples for fine-tuning, the loss on their answers only.

    Each example is a prompt and its answer (token ids); the targets of the prompt's
    positions and of the padding are ``-1`` (ignored by the loss), so the model learns
    to answer, not to write questions. Examples are padded to the batch's longest.

    Returns:
        ``x``, ``y``: ``(B, T_max)``.
    """
    picks = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
    T = max(len(examples[i]) for i in picks) - 1
    x = torch.zeros(batch_size, T, dtype=torch.long)
    y = torch.full((batch_size, T), -1, dtype=torch.long)
    for row, i in enumerate(picks):
        ids, start = examples[i], prompt_lengths[i]
        x[row, :len(ids) - 1] = ids[:-1]
        y[row, start - 1:len(ids) - 1] = ids[start:]              # predict the answer only
    return x, y


def fit(model: GPT, train_ids: Tensor, val_ids: Tensor, chars: Tensor,
        config: GPTTrainConfig, generator: torch.Generator,
        batches: Callable[[torch.Generator], tuple[Tensor, Tensor]] | None = None,
        run: RunOptions | None = None) -> dict[str, list[float]]:
    """Train ``model`` in place: the loop pretraining and fine-tuning share.

    Args:
        train_ids: the text to draw random windows from (:func:`random_windows`).
        val_ids: the text scored every ``config.eval_every`` steps.
        batches: ``generator -> (x, y)`` instead of random windows of ``train_ids``
            (fine-tuning's :func:`example_batches`).
        run: how it executes (:class:`~aigc_course.train.engine.RunOptions`: precision,
            checkpoints and resume, ``torch.compile``; data parallel under ``torchrun``).

    Returns:
        ``history``: per step ``loss`` (nats per token), ``lr``, ``grad_norm``, ``tokens``
        (seen so far) and ``seconds`` (wall time so far); per evaluation ``val_step``,
        ``val_bpc``, ``val_tokens`` and ``val_seconds``.
    """
    device = next(model.parameters()).device
    decay = [p for p in model.parameters() if p.dim() >= 2]       # matrices and embeddings
    no_decay = [p for p in model.parameters() if p.dim() < 2]     # biases and layer norms
    optimizer = build_optimiser(config.optimizer,
                                [{"params": decay, "weight_decay": config.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                config.lr, betas=config.betas, momentum=config.momentum)
    ema = EMA(model, config.ema_decay) if config.ema_decay else None
    scored = model if ema is None else ema.model                  # what validation scores
    T = model.config.block_size
    history: dict[str, list[float]] = {k: [] for k in (
        "loss", "lr", "grad_norm", "tokens", "seconds", "val_step", "val_bpc", "val_tokens",
        "val_seconds")}
    engine = Engine(run, device=device, generator=generator, desc="gpt",
                    fingerprint=fingerprint(config, model.config, train_ids, run))
    engine.track(history, model=model, optimizer=optimizer,
                 **({"ema": ema} if ema is not None else {}))
    forward = engine.prepare(model)
    model.train()
    start = time.perf_counter() - (history["seconds"][-1] if history["seconds"] else 0.0)
    for step in engine.steps(config.steps, progress=config.progress):
        lr = learning_rate(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = (batches(generator) if batches is not None
                else random_windows(train_ids, config.batch_size, config.window or T,
                                    generator))
        xs, ys = engine.shard(x, y)                                   # this rank's rows
        optimizer.zero_grad(set_to_none=True)
        with engine.autocast():
            _, loss, _ = forward(xs.to(device), ys.to(device))
        assert loss is not None
        norm = engine.backward(loss, optimizer, clip=config.grad_clip)
        if ema is not None:
            ema.update(model)
        history["loss"].append(engine.mean(loss))
        history["lr"].append(lr)
        history["grad_norm"].append(norm)
        seen = history["tokens"][-1] if history["tokens"] else 0.0
        history["tokens"].append(seen + float(x.numel()))
        history["seconds"].append(time.perf_counter() - start)
        last = step == config.steps - 1
        if last or (config.eval_every and (step + 1) % config.eval_every == 0):
            history["val_step"].append(float(step + 1))
            history["val_bpc"].append(bits_per_char(scored, val_ids, chars,
                                                    max_tokens=config.eval_tokens,
                                                    window=config.window))
            history["val_tokens"].append(history["tokens"][-1])
            history["val_seconds"].append(history["seconds"][-1])
    if ema is not None:
        model.load_state_dict(ema.model.state_dict())
    model.eval()
    return history


class LanguageModel:
    """A trained GPT and its tokenizer: the model of kind ``gpt``.

    Attributes:
        gpt: the network. tokenizer: its tokenizer. info: how it was trained.
        context: the longest context it was trained on (at most ``block_size``):
            sampling and scoring keep to it.
    """

    def __init__(self, gpt: GPT, tokenizer: CharTokenizer | ByteBPE,
                 info: dict[str, Any] | None = None, context: int | None = None) -> None:
        if gpt.config.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"the GPT has {gpt.config.vocab_size} token ids, the tokenizer "
                             f"{tokenizer.vocab_size}")
        self.gpt, self.tokenizer, self.info = gpt, tokenizer, dict(info or {})
        self.context = min(context or gpt.config.block_size, gpt.config.block_size)

    @property
    def config(self) -> GPTConfig:
        return self.gpt.config

    @property
    def conditional(self) -> bool:
        """A language model takes a prompt, not class labels."""
        return False

    @property
    def num_classes(self) -> int:
        return 0

    def to(self, device: torch.device | str) -> LanguageModel:
        """Move the network to ``device`` (in place); returns ``self``."""
        self.gpt.to(device)
        return self

    def encode(self, text: str) -> Tensor:
        """Token ids ``(T,)`` of ``text`` (a char vocabulary refuses unknown characters)."""
        return torch.tensor(self.tokenizer.encode(text), dtype=torch.long)

    def sample(self, n: int, *, y: Tensor | None = None,
               generator: torch.Generator | None = None, prompt: str = "\n",
               max_new_tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, use_cache: bool = True) -> Tensor:
        """``n`` continuations of ``prompt`` as token ids ``(n, T_prompt + max_new_tokens)``.

        Raises:
            ValueError: labels ``y``, an empty prompt, ``max_new_tokens`` outside
                ``0..MAX_NEW_TOKENS``, bad ``temperature``/``top_k``/``top_p``, or
                characters a char vocabulary lacks.
        """
        if y is not None:
            raise ValueError("a language model takes a prompt, not labels")
        if not prompt:
            raise ValueError("the prompt must not be empty (the default is a newline)")
        if not 0 <= max_new_tokens <= MAX_NEW_TOKENS:
            raise ValueError(f"--max-new-tokens must be in 0..{MAX_NEW_TOKENS}, got "
                             f"{max_new_tokens}")
        device = next(self.gpt.parameters()).device
        idx = self.encode(prompt).to(device).repeat(n, 1)             # (n, T_prompt)
        return generate(self.gpt, idx, max_new_tokens, temperature=temperature, top_k=top_k,
                        top_p=top_p, generator=generator, use_cache=use_cache,
                        context=self.context).cpu()

    def generate_text(self, prompt: str = "\n", max_new_tokens: int = 200, *, seed: int = 0,
                      **options: Any) -> str:
        """The prompt and one continuation of it as text (``options``: of :meth:`sample`)."""
        ids = self.sample(1, generator=torch.Generator().manual_seed(seed), prompt=prompt,
                          max_new_tokens=max_new_tokens, **options)
        return self.tokenizer.decode(ids[0].tolist())

    def bits_per_char(self, text: str, max_tokens: int | None = None) -> float:
        """Bits per character of ``text`` under the model (:func:`bits_per_char`)."""
        return bits_per_char(self.gpt, self.encode(text), token_chars(self.tokenizer),
                             max_tokens=max_tokens, window=self.context)


def train_gpt(data: TextData, model_config: GPTConfig, config: GPTTrainConfig,
              run: RunOptions | None = None) -> tuple[LanguageModel, dict[str, list[float]]]:
    """A new GPT trained on ``data.train`` (see :func:`fit`); eval mode, on the CPU."""
    if model_config.vocab_size != data.tokenizer.vocab_size:
        model_config = dataclasses.replace(model_config, vocab_size=data.tokenizer.vocab_size)
    with seeded(config.seed) as generator:
        gpt = GPT(model_config).to(local_device(config.device))
        history = fit(gpt, data.train, data.val, token_chars(data.tokenizer), config,
                      generator, run=run)
    return LanguageModel(gpt.cpu(), data.tokenizer, context=config.window), history


def config_from_profile(p: TextProfile, vocab_size: int, **changes: Any) -> GPTConfig:
    """The GPT architecture of a profile (``changes``: e.g. ``n_embd`` of a sweep)."""
    knobs = {"vocab_size": vocab_size, "block_size": p.block_size, "n_layer": p.n_layer,
             "n_head": p.n_head, "n_embd": p.n_embd, **changes}
    return GPTConfig(**knobs)


def train_config_from_profile(p: TextProfile, *, steps: int | None = None, seed: int = 0,
                              progress: bool = True) -> GPTTrainConfig:
    """The training run of a profile (``steps=None``: the profile's ``train_steps``)."""
    return GPTTrainConfig(steps=steps or p.train_steps, batch_size=p.batch_size, lr=p.lr,
                          warmup=p.warmup_steps, eval_every=p.eval_every,
                          eval_tokens=p.eval_tokens, window=p.train_window, seed=seed,
                          device=p.device, progress=progress)


def train_from_profile(p: TextProfile, *, dataset: str | None = None,
                       image_size: int | None = None, conditional: bool | None = None,
                       steps: int | None = None, seed: int = 0, progress: bool = True,
                       data: TextData | None = None, run: RunOptions | None = None) -> Trained:
    """The kind's ``train``: a GPT on a profile's corpus (``dataset``) and knobs.

    Args:
        dataset: a corpus name or a UTF-8 file (``None``: the profile's).
        image_size, conditional: must be ``None``/false (a language model has neither).
        data: the prepared text (``None``: prepared here from ``dataset``).
        run: how it executes (:class:`~aigc_course.train.engine.RunOptions`).

    Returns:
        The :class:`~aigc_course.kinds.Trained` model; its ``metrics`` hold ``val_bpc``
        and ``test_bpc`` on the whole splits (``p.score_tokens`` of them in a dry run).
    """
    if image_size is not None:
        raise ValueError("--image-size does not apply to a 'gpt' model")
    if conditional:
        raise ValueError("--conditional does not apply to a 'gpt' model (it takes a prompt)")
    with num_threads(p.num_threads):
        if data is None:
            data = prepare_text(dataset or p.dataset, p.tokenizer, p.bpe_vocab)
        config = train_config_from_profile(p, steps=steps, seed=seed, progress=progress)
        with Timer() as timer:
            lm, history = train_gpt(data, config_from_profile(p, data.tokenizer.vocab_size),
                                    config, run)
        chars = token_chars(data.tokenizer)
        scores = {f"{split}_bpc": bits_per_char(lm.gpt, data.split(split), chars,
                                                max_tokens=p.score_tokens, window=lm.context)
                  for split in ("val", "test")}
    metrics = {"dataset": data.source, "image_size": None, "conditional": False,
               "tokenizer": data.tokenizer.name, "vocab_size": data.tokenizer.vocab_size,
               "params": lm.gpt.num_params(), "seconds": timer.seconds,
               "threads": p.num_threads, "steps": config.steps, "seed": seed,
               "tokens_seen": history["tokens"][-1], "final_loss": history["loss"][-1],
               "chars": data.chars, "context": lm.context, **scores,
               "train": _plain(config)}
    lm.info = dict(metrics)
    return Trained(lm, NAME, metrics, history, "trained", timer.seconds)


def _plain(config: GPTTrainConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(config).items()}


def save_gpt(model: LanguageModel, path: str | Path,
             metadata: dict[str, Any] | None = None) -> Path:
    """Save a :class:`LanguageModel` (network, config and tokenizer) in the common format."""
    config = {"model": model.config.to_dict(), "tokenizer": model.tokenizer.to_config(),
              "context": model.context}
    return save_checkpoint(path, NAME, model.gpt, config, metadata)


def model_from_checkpoint(checkpoint: dict[str, Any], path: str | Path = "?") -> LanguageModel:
    """Rebuild a :class:`LanguageModel` from :func:`read_checkpoint`'s dict.

    Raises:
        ValueError: a config or weights that do not fit together.
    """
    try:
        config = checkpoint["config"]
        gpt = GPT(GPTConfig(**config["model"]))
        gpt.load_state_dict(checkpoint["state_dict"])
        tokenizer = tokenizer_from_config(config["tokenizer"])
        model = LanguageModel(gpt.eval(), tokenizer, checkpoint.get("metadata", {}),
                              context=config.get("context"))
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: the GPT's config and weights do not fit "
                         f"({type(error).__name__}: {error})") from error
    return model


def load_gpt(path: str | Path) -> LanguageModel:
    """The :class:`LanguageModel` saved at ``path`` (``weights_only=True``)."""
    return model_from_checkpoint(read_checkpoint(path, NAME), path)


#: ``aigc-course train gpt`` on the cpu profile; no checkpoint ships (see the docstring)
RECIPE: dict[str, Any] = {"profile": "cpu", "dataset": "pydoc", "image_size": None,
                          "conditional": False}

KIND = ModelKind(
    name=NAME, description="a GPT on text, character or byte-level BPE (chapter 06)",
    profile=TextProfile, train=train_from_profile, save=save_gpt,
    from_checkpoint=model_from_checkpoint, shipped=None, recipe=RECIPE,
    sample_options=("prompt", "max_new_tokens", "temperature", "top_k", "top_p"),
    modality="text")
