"""A GPT in one file: causal self-attention written out, pre-norm blocks, tied embeddings.

The decoder-only transformer of Radford et al. (2018, 2019; "GPT-2"), after Vaswani et al.
(2017, "Attention is all you need"), in the layout of nanoGPT's ``model.py`` (Karpathy) and
with the names of Hugging Face's ``GPT2LMHeadModel``, so our weights copy into theirs one
to one (``tests/test_gpt_parity.py``):

* token and position embeddings ``wte`` $(V, C)$, ``wpe`` $(T_{max}, C)$;
* ``n_layer`` pre-norm blocks $x \\leftarrow x + \\mathrm{Attn}(\\mathrm{LN}_1(x))$,
  $x \\leftarrow x + \\mathrm{MLP}(\\mathrm{LN}_2(x))$ (GPT-2 moved the layer norms in
  front of each sub-layer, Radford et al. 2019, sec. 2.3);
* a final ``ln_f`` and the language-model head tied to ``wte`` (Press & Wolf 2017): the
  logits are $h W_{te}^\\top$.

:class:`CausalSelfAttention` computes
$\\mathrm{softmax}(QK^\\top/\\sqrt{d_k} + M)V$ (Vaswani et al. 2017, eq. 1) with the causal
mask $M_{ij} = -\\infty$ for $j > i$ line by line; ``attention="sdpa"`` runs the same
equation through ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``,
the fused kernel, and a test pins the two to each other.

Sampling (:func:`generate`) is greedy, temperature, top-k (Fan et al. 2018) and top-p
(nucleus, Holtzman et al. 2020), with a key-value cache: each block keeps its keys and
values, so a new token costs one position of attention instead of the whole context.

Simplified against GPT-2: no dropout by default (tiny data, few steps), GELU with the
tanh approximation exactly as GPT-2 (``gelu_new``), biases optional (``bias=False``
trains a little faster; parity holds with either). Past ``block_size`` tokens the
absolute position embeddings cannot slide, so :func:`generate` keeps the last
``block_size`` tokens and recomputes them (the cache only speeds up the first
``block_size``); nanoGPT crops the same way.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
Attention = Literal["manual", "sdpa"]
ATTENTIONS: tuple[Attention, ...] = ("manual", "sdpa")
#: one ``(keys, values)`` pair per block, each ``(B, n_head, T_cached, head_dim)``
KVCache = list[tuple[Tensor, Tensor]]


@dataclass
class GPTConfig:
    """The architecture of a :class:`GPT`.

    Attributes:
        vocab_size: $V$, the tokenizer's vocabulary.
        block_size: $T_{max}$, the longest context (position embeddings).
        n_layer: transformer blocks.
        n_head: attention heads per block (``n_embd`` must divide by it).
        n_embd: $C$, the residual stream's width.
        dropout: dropout on attention weights and residual branches (0: none).
        bias: biases in the linear layers and layer norms (GPT-2 has them).
        attention: ``"manual"`` (written out) or ``"sdpa"`` (the fused kernel); the same
            function.
    """

    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False
    attention: Attention = "sdpa"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head "
                             f"({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {self.attention!r}; valid: "
                             f"{', '.join(ATTENTIONS)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for a checkpoint."""
        return dataclasses.asdict(self)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (Vaswani et al. 2017, eqs. 1-2), GPT-2's names."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.n_embd // config.n_head
        self.attention = config.attention
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # W^Q,K,V
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)      # W^O
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cache: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend over the cached positions and ``x``'s own.

        Args:
            x: ``(B, T, C)``, the new positions.
            cache: keys and values of earlier positions ``(B, n_head, T_past, head_dim)``.

        Returns:
            The output ``(B, T, C)`` and the keys and values of all positions (the cache
            for the next call).
        """
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)                        # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)    # (B, h, T, d_k)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)    # (B, h, T, d_k)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)    # (B, h, T, d_k)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)                         # (B, h, T_all, d_k)
            v = torch.cat([cache[1], v], dim=2)
        past = k.shape[2] - T
        if self.attention == "manual":
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # QK^T/sqrt(d_k)
            # M_ij = -inf where key j is later than query i (query i sits at past + i)
            later = torch.ones(T, past + T, dtype=torch.bool, device=x.device).triu(past + 1)
            scores = scores.masked_fill(later, float("-inf"))            # (B, h, T, T_all)
            weights = self.attn_dropout(scores.softmax(dim=-1))
            y = weights @ v                                              # (B, h, T, d_k)
        else:
            # is_causal aligns the mask top-left, right only without a cache; with one,
            # a single new position attends to every cached key (no mask needed)
            if past and T > 1:
                later = torch.ones(T, past + T, dtype=torch.bool, device=x.device).triu(past + 1)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=~later,
                                                   dropout_p=self._p())
            else:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=past == 0 and T > 1,
                                                   dropout_p=self._p())
        y = y.transpose(1, 2).reshape(B, T, C)                           # concat heads: (B, T, C)
        return self.resid_dropout(self.c_proj(y)), (k, v)

    def _p(self) -> float:
        return self.dropout if self.training else 0.0


class MLP(nn.Module):
    """The position-wise feed-forward network $W_2\\,\\mathrm{GELU}(W_1 x)$, width $4C$."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C) -> (B, T, C)``."""
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """A pre-norm transformer block (Radford et al. 2019, sec. 2.3)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``(B, T, C) -> (B, T, C)`` and this block's keys and values."""
        attended, kv = self.attn(self.ln_1(x), cache)
        x = x + attended                                     # x <- x + Attn(LN_1(x))
        x = x + self.mlp(self.ln_2(x))                       # x <- x + MLP(LN_2(x))
        return x, kv


class GPT(nn.Module):
    """A decoder-only transformer language model (see the module docstring)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)      # token embeddings
        self.wpe = nn.Embedding(config.block_size, config.n_embd)      # position embeddings
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight                          # tied (Press & Wolf 2017)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the residual projections: std 0.02 / sqrt(2 n_layer)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, 0.0, 0.02)          # N(0, 0.02^2), as GPT-2
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters (tied weights once); without the position embeddings by default,
        the count scaling laws use (Kaplan et al. 2020)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                cache: KVCache | None = None) -> tuple[Tensor, Tensor | None, KVCache]:
        """Logits of the next token at every position.

        Args:
            idx: token ids ``(B, T)``; with a ``cache``, only the new positions.
            targets: next-token ids ``(B, T)`` for the loss (``-1``: ignored).
            cache: the keys and values of the positions before ``idx`` (from a previous
                call), so ``T_past + T <= block_size``.

        Returns:
            ``logits`` ``(B, T, V)``, the mean cross-entropy in nats per token (or
            ``None``) and the cache including ``idx``'s positions.
        """
        B, T = idx.shape
        past = cache[0][0].shape[2] if cache else 0
        if past + T > self.config.block_size:
            raise ValueError(f"{past + T} positions exceed block_size "
                             f"{self.config.block_size}")
        positions = torch.arange(past, past + T, device=idx.device)      # (T,)
        x = self.drop(self.wte(idx) + self.wpe(positions))               # (B, T, C)
        new_cache: KVCache = []
        for i, block in enumerate(self.h):
            x, kv = block(x, cache[i] if cache else None)
            new_cache.append(kv)
        logits = self.lm_head(self.ln_f(x))                              # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),  # (B*T, V)
                                   targets.reshape(-1), ignore_index=-1)
        return logits, loss, new_cache


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None
                  ) -> Tensor:
    """Logits with the tokens top-k and top-p exclude set to $-\\infty$.

    Top-k keeps the ``k`` largest logits (Fan et al. 2018); top-p keeps the smallest set
    of most probable tokens whose probability mass is at least ``p`` (Holtzman et al.
    2020, eq. 2): sorted by probability, a token stays if the mass before it is below
    ``p``, so the token that crosses ``p`` stays too. Both may be given (top-k first).

    Args:
        logits: ``(..., V)``.
        top_k: ``1 <= k``; ``None`` or ``k >= V`` keeps every token.
        top_p: in ``(0, 1]``; ``None`` or ``1`` keeps every token.

    Raises:
        ValueError: ``top_k < 1`` or ``top_p`` outside ``(0, 1]``.
    """
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]      # (..., 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_p < 1.0:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            probs = sorted_logits.softmax(dim=-1)
            mass_before = probs.cumsum(dim=-1) - probs                  # mass of better tokens
            drop_sorted = mass_before >= top_p                           # (..., V) sorted order
            drop = drop_sorted.scatter(-1, order, drop_sorted)           # back to vocab order
            logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def generate(model: GPT, idx: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True,
             context: int | None = None) -> Tensor:
    """Continue ``idx`` by ``max_new_tokens`` tokens.

    Each step turns the last position's logits $\\ell$ into $p = \\mathrm{softmax}(\\ell/\\tau)$
    after :func:`filter_logits` and draws from it; $\\tau = 0$ is greedy decoding (the
    argmax, the limit $\\tau \\to 0$). With ``use_cache`` each step feeds only the new
    token and the blocks' cached keys and values; the tokens are the same as without it
    (``tests/test_gpt.py``). The random draws use ``generator`` on the CPU, so a seed
    gives the same text on every device.

    Args:
        model: a :class:`GPT` (put in eval mode here).
        idx: prompt token ids ``(B, T)``, ``T >= 1``.
        max_new_tokens: tokens to add (``>= 0``).
        temperature: $\\tau \\ge 0$.
        top_k, top_p: see :func:`filter_logits`.
        generator: the random source of the draws.
        use_cache: keep keys and values between steps.
        context: the longest context the model sees (``None``: ``block_size``); a model
            trained on shorter windows than its ``block_size`` keeps to what it learnt.

    Returns:
        ``(B, T + max_new_tokens)`` token ids: the prompt and its continuation.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    filter_logits(torch.zeros(1, 2), top_k, top_p)          # checks top_k and top_p now
    if idx.ndim != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must be (B, T) with T >= 1, got shape {tuple(idx.shape)}")
    model.eval()
    block = min(context or model.config.block_size, model.config.block_size)
    cache: KVCache | None = None
    for _ in range(max_new_tokens):
        if use_cache and cache is not None and idx.shape[1] <= block:
            logits, _, cache = model(idx[:, -1:], cache=cache)        # one new position
        else:
            logits, _, cache = model(idx[:, -block:])                 # the (cropped) context
        if not use_cache or idx.shape[1] >= block:
            cache = None                                  # past block_size: recompute
        ell = filter_logits(logits[:, -1, :].float(), top_k, top_p)   # (B, V)
        if temperature == 0:
            next_id = ell.argmax(dim=-1, keepdim=True)                 # greedy: (B, 1)
        else:
            probs = (ell / temperature).softmax(dim=-1).cpu()
            next_id = torch.multinomial(probs, 1, generator=generator).to(idx.device)
        idx = torch.cat([idx, next_id], dim=1)
    return idx
