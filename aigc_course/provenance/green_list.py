"""The green-list watermark for text: bias generation towards a secret part of the
vocabulary at each step, then count the green tokens.

Kirchenbauer, Geiping, Wen, Katz, Miers & Goldstein (2023), "A Watermark for Large
Language Models" (ICML), Algorithm 2, the *soft* watermark. At each position the
previous token $s^{(t-1)}$ and a secret key seed a random generator, which draws a
fraction $\\gamma$ of the vocabulary as the *green list* $G$; the generator adds $\\delta$
to the logits of the green tokens before sampling,

$$\\hat p_k^{(t)} = \\frac{e^{\\ell_k + \\delta [k \\in G]}}
{\\sum_i e^{\\ell_i + \\delta [i \\in G]}}.$$

A detector who knows the key counts the green tokens $|s|_G$ among $T$ scored tokens and
tests the null hypothesis "the text was written without knowledge of the green lists"
(then each token is green with probability $\\gamma$) with the one-proportion z-test

$$z = \\frac{|s|_G - \\gamma T}{\\sqrt{T \\gamma (1 - \\gamma)}}$$

(paper eq. 2 and sec. 3; $z > 4$ is a false-positive rate of $3 \\times 10^{-5}$). How
strong the mark is depends on the entropy of the model's next-token distributions: a
token the model is sure of cannot be pushed to green. The paper's *spike entropy*
$S(p, \\zeta) = \\sum_k p_k / (1 + \\zeta p_k)$ with
$\\zeta = (1 - \\gamma)(e^\\delta - 1) / (1 + (e^\\delta - 1)\\gamma)$ (Definition 4.1)
bounds the expected green fraction from below (Theorem 4.2):
$\\mathbb E |s|_G / T \\ge \\gamma e^\\delta \\bar S / (1 + (e^\\delta - 1)\\gamma)$.

Choices and simplifications:

* The vocabulary of the course's GPT is small (about 100 characters, or a few hundred
  BPE tokens), so the green lists of every previous token are drawn once, as a
  ``(V, V)`` boolean matrix (:func:`green_mask`; row $i$: the green list after token
  $i$); generation and detection then index it instead of re-seeding a generator per
  token. Row $i$ is the first $\\lfloor \\gamma V \\rfloor$ entries of a permutation drawn
  by a ``torch.Generator`` seeded with SHA-256 of (key seed, $i$); the paper's code seeds
  with the product of a fixed key and the token id. With $\\lfloor \\gamma V \\rfloor / V$
  a little below $\\gamma$, the z-test uses the list's true fraction
  (:attr:`GreenListKey.green_fraction`) so that it is exact under the null.
* Repeated (previous token, token) pairs: a human text repeats the same character
  bigrams (``"e "``, ``"th"``) many times, and each repetition is the same coin, not a
  new one; counting them all inflates the variance of $z$ on human text. By default
  (``count="unique"``) each distinct pair is scored once, as the authors' follow-up
  recommends (Kirchenbauer et al. 2024, "On the Reliability of Watermarks for Large
  Language Models", ICLR); ``count="all"`` is the paper's original count.
* The first token has no predecessor and is not scored: $T$ is the number of pairs.
* The perplexity cost is measured under the same (unwatermarked) model, not a larger
  oracle model as in the paper's experiments: there is no larger model here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import torch

from aigc_course.models.gpt import GPT, filter_logits
from aigc_course.provenance.keys import load_key, new_seed, save_key
from aigc_course.text.tokenizers import Tokenizer
from aigc_course.train.gpt import LanguageModel
from aigc_course.utils import Timer

Tensor = torch.Tensor
KIND = "green_list"
Count = Literal["unique", "all"]
COUNTS: tuple[Count, ...] = ("unique", "all")


@dataclass(frozen=True)
class GreenListKey:
    """The secret of a green-list watermark and its strength.

    Attributes:
        seed: the secret (63-bit integer, :func:`~aigc_course.provenance.keys.new_seed`).
        vocab_size: $V$ of the tokenizer the mark is keyed for.
        gamma: $\\gamma$, the fraction of the vocabulary that is green at each position.
        delta: $\\delta$, the bias added to green logits while generating.
    """

    seed: int
    vocab_size: int
    gamma: float = 0.25
    delta: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.vocab_size, int) or self.vocab_size < 2:
            raise ValueError(f"vocab_size must be an integer >= 2, got {self.vocab_size!r}")
        if not 0.0 < self.gamma < 1.0:
            raise ValueError(f"gamma must be in (0, 1), got {self.gamma}")
        if not 1 <= self.green_size < self.vocab_size:
            raise ValueError(f"gamma={self.gamma} of {self.vocab_size} tokens gives "
                             f"{self.green_size} green tokens; need 1..{self.vocab_size - 1}")
        if self.delta < 0:
            raise ValueError(f"delta must be >= 0, got {self.delta}")

    @property
    def green_size(self) -> int:
        """$|G| = \\lfloor \\gamma V \\rfloor$ green tokens per position."""
        return int(self.gamma * self.vocab_size)

    @property
    def green_fraction(self) -> float:
        """$|G| / V$, the $\\gamma$ the z-test uses (at most $1/V$ below ``gamma``)."""
        return self.green_size / self.vocab_size

    @classmethod
    def new(cls, vocab_size: int, gamma: float = 0.25, delta: float = 2.0) -> GreenListKey:
        """A key with a fresh secret seed."""
        return cls(new_seed(), vocab_size, gamma, delta)

    def save(self, path: str | Path) -> Path:
        """Write the key (kind ``"green_list"``, atomically)."""
        return save_key(path, KIND, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> GreenListKey:
        """The key saved at ``path``; ``ValueError`` for a foreign file or another kind."""
        settings = load_key(path, KIND)
        try:
            return cls(int(settings["seed"]), int(settings["vocab_size"]),
                       float(settings["gamma"]), float(settings["delta"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"{path}: the green-list key's settings are damaged "
                             f"({type(error).__name__}: {error})") from error


def _row_seed(seed: int, previous: int) -> int:
    digest = hashlib.sha256(f"green_list:{seed}:{previous}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1                    # 63 bits


def green_list(key: GreenListKey, previous: int) -> Tensor:
    """The green token ids ``(|G|,)`` after token ``previous`` (Algorithm 2, steps 2-3)."""
    if not 0 <= previous < key.vocab_size:
        raise ValueError(f"token {previous} is outside the key's vocabulary of "
                         f"{key.vocab_size}")
    generator = torch.Generator().manual_seed(_row_seed(key.seed, previous))
    return torch.randperm(key.vocab_size, generator=generator)[: key.green_size]


@functools.lru_cache(maxsize=8)
def _mask(seed: int, vocab_size: int, gamma: float) -> Tensor:
    key = GreenListKey(seed, vocab_size, gamma)
    mask = torch.zeros(vocab_size, vocab_size, dtype=torch.bool)
    for previous in range(vocab_size):
        mask[previous, green_list(key, previous)] = True
    return mask


def green_mask(key: GreenListKey) -> Tensor:
    """Every green list at once: ``(V, V)`` bool, row $i$ the list after token $i$."""
    return _mask(key.seed, key.vocab_size, key.gamma).clone()


def _network(model: GPT | LanguageModel, context: int | None) -> tuple[GPT, int]:
    gpt = model.gpt if isinstance(model, LanguageModel) else model
    if context is None and isinstance(model, LanguageModel):
        context = model.context
    return gpt, min(context or gpt.config.block_size, gpt.config.block_size)


@dataclass
class Generation:
    """Sampled ids and what the unwatermarked model thought of each new token.

    Attributes:
        ids: ``(B, T_prompt + N)`` the prompts and their continuations.
        log_probs: ``(B, N)`` $\\log p(x_t \\mid x_{<t})$ of each new token under the
            model without the mark (temperature 1, no filtering): its perplexity.
        entropy: ``(B, N)`` Shannon entropy (nats) of the unmarked sampling distribution
            (after temperature and top-k/top-p) at each step.
        spike_entropy: ``(B, N)`` $S(p, \\zeta)$ of that distribution (Definition 4.1).
    """

    ids: Tensor
    log_probs: Tensor
    entropy: Tensor
    spike_entropy: Tensor


def spike_modulus(gamma: float, delta: float) -> float:
    """$\\zeta = (1 - \\gamma)(e^\\delta - 1) / (1 + (e^\\delta - 1)\\gamma)$ (Theorem 4.2)."""
    alpha = math.exp(delta)
    return (1 - gamma) * (alpha - 1) / (1 + (alpha - 1) * gamma)


def green_bound(spike: float, gamma: float, delta: float) -> float:
    """Theorem 4.2's lower bound $\\gamma\\alpha \\bar S / (1 + (\\alpha - 1)\\gamma)$ on the
    expected green fraction, $\\alpha = e^\\delta$."""
    alpha = math.exp(delta)
    return gamma * alpha * spike / (1 + (alpha - 1) * gamma)


@torch.no_grad()
def watermarked_generation(model: GPT | LanguageModel, key: GreenListKey, idx: Tensor,
                           max_new_tokens: int, *, temperature: float = 1.0,
                           top_k: int | None = None, top_p: float | None = None,
                           generator: torch.Generator | None = None,
                           context: int | None = None) -> Generation:
    """Continue ``idx`` with the green lists' logits raised by $\\delta$ (Algorithm 2).

    The loop is :func:`aigc_course.models.gpt.generate`'s (key-value cache, the context
    cropped to ``context``), with the bias added before top-k/top-p and temperature (the
    order of Hugging Face's logits processors): ``key.delta = 0`` draws exactly the
    tokens ``generate`` draws with the same ``generator``.

    Args:
        model: a :class:`GPT`, or a :class:`LanguageModel` (its context is used).
        key: the watermark key (``vocab_size`` must be the model's).
        idx: prompt ids ``(B, T)``, ``T >= 1``.
        max_new_tokens: tokens to add. temperature: $\\tau \\ge 0$ (0: greedy).
        top_k, top_p: see :func:`~aigc_course.models.gpt.filter_logits`.
        generator: the random source (CPU) of the draws.
        context: the longest context the model sees (``None``: the model's).

    Returns:
        The :class:`Generation`: ids ``(B, T + max_new_tokens)`` and per-token statistics.
    """
    gpt, block = _network(model, context)
    if gpt.config.vocab_size != key.vocab_size:
        raise ValueError(f"the key is for {key.vocab_size} tokens, the model has "
                         f"{gpt.config.vocab_size}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    filter_logits(torch.zeros(1, 2), top_k, top_p)                   # checks top_k and top_p
    if idx.ndim != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must be (B, T) with T >= 1, got shape {tuple(idx.shape)}")
    _check_ids(idx, key)
    gpt.eval()
    device = idx.device
    green = green_mask(key).to(device=device, dtype=torch.float32)   # (V, V)
    zeta = spike_modulus(key.green_fraction, key.delta)
    cache = None
    log_probs, entropies, spikes = [], [], []
    for _ in range(max_new_tokens):
        if cache is not None and idx.shape[1] <= block:
            logits, _, cache = gpt(idx[:, -1:], cache=cache)            # one new position
        else:
            logits, _, cache = gpt(idx[:, -block:])                     # the (cropped) context
        if idx.shape[1] >= block:
            cache = None                                                # past block: recompute
        ell = logits[:, -1, :].float()                                  # (B, V)
        marked = filter_logits(ell + key.delta * green[idx[:, -1]], top_k, top_p)
        if temperature == 0:
            next_id = marked.argmax(dim=-1, keepdim=True)               # (B, 1)
            entropy = spike = torch.zeros(ell.shape[0], device=device)
        else:
            probs = (marked / temperature).softmax(dim=-1).cpu()
            next_id = torch.multinomial(probs, 1, generator=generator).to(device)
            p = (filter_logits(ell, top_k, top_p) / temperature).softmax(dim=-1)  # unmarked
            entropy = -(p * p.clamp_min(1e-30).log()).sum(-1)           # H(p), nats
            spike = (p / (1 + zeta * p)).sum(-1)                        # S(p, zeta), Def. 4.1
        log_probs.append(ell.log_softmax(-1).gather(1, next_id)[:, 0])
        entropies.append(entropy)
        spikes.append(spike)
        idx = torch.cat([idx, next_id], dim=1)

    def stack(steps: list[Tensor]) -> Tensor:
        return torch.stack(steps, 1).cpu() if steps else torch.zeros(idx.shape[0], 0)  # (B, N)

    return Generation(idx.cpu(), stack(log_probs), stack(entropies), stack(spikes))


def generate_watermarked(model: GPT | LanguageModel, key: GreenListKey, idx: Tensor,
                         max_new_tokens: int, temperature: float = 1.0,
                         top_k: int | None = None, generator: torch.Generator | None = None,
                         top_p: float | None = None, context: int | None = None) -> Tensor:
    """The ids ``(B, T + max_new_tokens)`` of :func:`watermarked_generation`."""
    return watermarked_generation(model, key, idx, max_new_tokens, temperature=temperature,
                                  top_k=top_k, top_p=top_p, generator=generator,
                                  context=context).ids


def _check_ids(ids: Tensor, key: GreenListKey) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= key.vocab_size):
        bad = ids[(ids < 0) | (ids >= key.vocab_size)].unique()[:10].tolist()
        raise ValueError(f"token ids {bad} are outside the key's vocabulary of "
                         f"{key.vocab_size}: the key was made for another tokenizer")


def green_counts(ids: Tensor, key: GreenListKey, count: Count = "unique"
                 ) -> tuple[Tensor, Tensor]:
    """Green tokens $|s|_G$ and scored tokens $T$ of each row of ``ids``.

    Token $t \\ge 1$ is scored against the green list of token $t - 1$.

    Args:
        ids: ``(B, L)`` token ids, ``L >= 2``.
        count: ``"unique"`` scores each distinct (previous, token) pair once;
            ``"all"`` every position.

    Returns:
        ``(B,)`` green counts and ``(B,)`` numbers of scored tokens.
    """
    if count not in COUNTS:
        raise ValueError(f"unknown count {count!r}; valid: {', '.join(COUNTS)}")
    if ids.ndim != 2 or ids.shape[1] < 2:
        raise ValueError(f"ids must be (B, L) with L >= 2 tokens, got {tuple(ids.shape)}")
    _check_ids(ids, key)
    mask = _mask(key.seed, key.vocab_size, key.gamma).flatten()         # (V * V,)
    pairs = ids[:, :-1].cpu() * key.vocab_size + ids[:, 1:].cpu()       # (B, L - 1)
    if count == "all":
        return mask[pairs].sum(1), torch.full((ids.shape[0],), pairs.shape[1])
    pairs = pairs.sort(dim=1).values
    first = torch.ones_like(pairs, dtype=torch.bool)                    # (B, L - 1)
    first[:, 1:] = pairs[:, 1:] != pairs[:, :-1]                        # first of its kind
    return (mask[pairs] & first).sum(1), first.sum(1)


def z_from_counts(green: Tensor, tokens: Tensor, gamma: float) -> Tensor:
    """$z = (|s|_G - \\gamma T) / \\sqrt{T\\gamma(1 - \\gamma)}$ (paper eq. 2), ``(B,)``."""
    green, tokens = green.double(), tokens.double()
    return (green - gamma * tokens) / (tokens * gamma * (1 - gamma)).sqrt()


def z_scores(ids: Tensor, key: GreenListKey, count: Count = "unique") -> Tensor:
    """The z-score ``(B,)`` of each row of ``ids`` ``(B, L)`` (see :func:`green_counts`)."""
    green, tokens = green_counts(ids, key, count)
    return z_from_counts(green, tokens, key.green_fraction)


def z_score(ids: Tensor, key: GreenListKey, count: Count = "unique") -> float:
    """The z-score of one sequence ``(L,)`` of token ids."""
    if ids.ndim != 1:
        raise ValueError(f"ids must be one sequence (L,), got shape {tuple(ids.shape)}")
    return float(z_scores(ids[None], key, count)[0])


def p_value(z: float) -> float:
    """The one-sided p-value $P(Z > z) = \\tfrac12 \\mathrm{erfc}(z/\\sqrt2)$ under the null."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def detect(text_or_ids: str | Tensor | list[int], key: GreenListKey,
           tokenizer: Tokenizer | None = None, z_threshold: float = 4.0,
           count: Count = "unique") -> dict[str, float | int | bool]:
    """Is this text watermarked with ``key``?

    Args:
        text_or_ids: a text (needs ``tokenizer``) or its token ids.
        key: the key it is tested against.
        tokenizer: the model's (its ``vocab_size`` must be the key's).
        z_threshold: flag the text when $z$ exceeds it (4: a $3 \\times 10^{-5}$ chance
            of flagging an unmarked text).
        count: see :func:`green_counts`.

    Returns:
        ``z``, ``p_value``, ``green`` ($|s|_G$), ``tokens`` ($T$), ``green_fraction``
        ($|s|_G / T$) and ``watermarked`` ($z >$ ``z_threshold``).
    """
    if isinstance(text_or_ids, str):
        if tokenizer is None:
            raise ValueError("detecting a text needs the tokenizer (or pass token ids)")
        if tokenizer.vocab_size != key.vocab_size:
            raise ValueError(f"the key is for {key.vocab_size} tokens, the tokenizer has "
                             f"{tokenizer.vocab_size}")
        text_or_ids = tokenizer.encode(text_or_ids)
    ids = torch.as_tensor(text_or_ids, dtype=torch.long).flatten()
    if ids.numel() < 2:
        raise ValueError(f"need at least 2 tokens to score one, got {ids.numel()}")
    green, tokens = green_counts(ids[None], key, count)
    z = float(z_from_counts(green, tokens, key.green_fraction)[0])
    return {"z": z, "p_value": p_value(z), "green": int(green[0]), "tokens": int(tokens[0]),
            "green_fraction": float(green[0]) / int(tokens[0]),
            "watermarked": z > z_threshold}


def windows(ids: Tensor, length: int, limit: int | None = None) -> Tensor:
    """Non-overlapping windows ``(N, length)`` of a text's ids ``(L,)`` (the first ``limit``)."""
    n = ids.numel() // length if limit is None else min(limit, ids.numel() // length)
    if n < 1:
        raise ValueError(f"a text of {ids.numel()} tokens has no window of {length}")
    return ids[: n * length].view(n, length)                            # (N, length)


def prompts_from(ids: Tensor, n: int, length: int = 16, seed: int = 0) -> Tensor:
    """``n`` prompts ``(n, length)``: windows of ``ids`` ``(L,)`` at random places."""
    if ids.numel() <= length:
        raise ValueError(f"a text of {ids.numel()} tokens has no prompt of {length}")
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - length, (n,), generator=generator)
    return ids[starts[:, None] + torch.arange(length)]                  # (n, length)


def detection_vs_length(model: GPT | LanguageModel, key: GreenListKey, prompts: Tensor,
                        human: Tensor, *, lengths: tuple[int, ...] = (16, 32, 64, 128, 256),
                        temperature: float = 1.0, top_k: int | None = None,
                        z_threshold: float = 4.0, count: Count = "unique", seed: int = 0,
                        max_human: int = 2000) -> pd.DataFrame:
    """Detection rate of marked generations and false positives of unmarked text, per $T$.

    Each prompt is continued twice by ``max(lengths)`` tokens, with and without the mark
    (same random draws); the first $T$ new tokens are scored (the prompt's last token is
    the predecessor of the first). Human text is cut into non-overlapping windows of
    $T + 1$ tokens (at most ``max_human`` per length).

    Args:
        prompts: ``(B, P)`` prompt ids. human: ``(L,)`` ids of held-out human text.

    Returns:
        One row per $T$: ``tokens``, ``detection_rate``, ``fpr_generated`` (unmarked
        generations), ``fpr_human``, ``human_windows``, mean z of each and the human
        z's standard deviation.
    """
    longest, start = max(lengths), prompts.shape[1] - 1
    runs = {}
    for delta in (key.delta, 0.0):
        runs[delta] = generate_watermarked(
            model, dataclasses.replace(key, delta=delta), prompts, longest,
            temperature=temperature, top_k=top_k,
            generator=torch.Generator().manual_seed(seed))
    rows = []
    for length in lengths:
        marked = z_scores(runs[key.delta][:, start: start + length + 1], key, count)
        plain = z_scores(runs[0.0][:, start: start + length + 1], key, count)
        people = z_scores(windows(human, length + 1, max_human), key, count)
        rows.append({"tokens": length,
                     "detection_rate": float((marked > z_threshold).double().mean()),
                     "fpr_generated": float((plain > z_threshold).double().mean()),
                     "fpr_human": float((people > z_threshold).double().mean()),
                     "human_windows": people.numel(),
                     "z_marked": float(marked.mean()), "z_generated": float(plain.mean()),
                     "z_human": float(people.mean()), "z_human_std": float(people.std())})
    return pd.DataFrame(rows)


def perplexity_cost(model: GPT | LanguageModel, key: GreenListKey, prompts: Tensor, *,
                    max_new_tokens: int = 128, deltas: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0),
                    temperature: float = 1.0, top_k: int | None = None,
                    z_threshold: float = 4.0, count: Count = "unique",
                    seed: int = 0) -> pd.DataFrame:
    """The price of the mark: perplexity of marked and unmarked generations (paper Fig. 2).

    The same prompts are continued once per $\\delta$ (0: no mark) with the same random
    draws; the perplexity $\\exp(-\\frac1{BN}\\sum \\log p(x_t \\mid x_{<t}))$ of the new
    tokens is under the unmarked model at temperature 1.

    Returns:
        One row per $\\delta$: ``delta``, ``perplexity``, ``z`` (mean), ``detection_rate``,
        ``green_fraction`` (measured, ``count="all"``), ``green_bound`` (Theorem 4.2's
        lower bound from the mean spike entropy), ``entropy`` (mean, nats),
        ``spike_entropy`` and ``seconds``.
    """
    start, rows = prompts.shape[1] - 1, []
    for delta in deltas:
        marked_key = dataclasses.replace(key, delta=delta)
        with Timer() as timer:
            run = watermarked_generation(model, marked_key, prompts, max_new_tokens,
                                         temperature=temperature, top_k=top_k,
                                         generator=torch.Generator().manual_seed(seed))
        scored = run.ids[:, start:]
        z = z_scores(scored, key, count)
        green, tokens = green_counts(scored, key, "all")
        spike = float(run.spike_entropy.mean())
        rows.append({"delta": delta, "perplexity": math.exp(-float(run.log_probs.mean())),
                     "z": float(z.mean()),
                     "detection_rate": float((z > z_threshold).double().mean()),
                     "green_fraction": float(green.sum() / tokens.sum()),
                     "green_bound": green_bound(spike, key.green_fraction, delta),
                     "entropy": float(run.entropy.mean()), "spike_entropy": spike,
                     "seconds": timer.seconds})
    return pd.DataFrame(rows)
