"""Our GPT against references: the attention against PyTorch's fused kernel, the whole
model against Hugging Face's ``GPT2LMHeadModel`` with the same weights (minGPT's one
parity test, on a random initialisation: nothing is downloaded).

Tolerances: both sides compute in float32 in a different order (our ``c_attn`` is an
``nn.Linear``, theirs a ``Conv1D`` computing ``x @ W`` with the transposed matrix; the
fused kernel's softmax is blocked), so logits agree to rounding, about 1e-6 relative;
``atol=1e-5`` on logits of size ~1 leaves a 10x margin and still catches any wrong
mask, scale, layer-norm placement or weight mapping (each moves logits by > 1e-2).
"""

from __future__ import annotations

import pytest
import torch

from aigc_course.models.gpt import GPT, CausalSelfAttention, GPTConfig


def _config(**changes: object) -> GPTConfig:
    knobs = dict(vocab_size=61, block_size=24, n_layer=3, n_head=4, n_embd=32, bias=True,
                 attention="manual")
    knobs.update(changes)
    return GPTConfig(**knobs)  # type: ignore[arg-type]


@pytest.mark.parametrize("T", [1, 7, 24])
def test_written_out_attention_equals_sdpa_causal(T: int) -> None:
    torch.manual_seed(0)
    manual = CausalSelfAttention(_config(attention="manual"))
    fused = CausalSelfAttention(_config(attention="sdpa"))
    fused.load_state_dict(manual.state_dict())
    x = torch.randn(3, T, 32)
    ours, _ = manual(x)
    # the reference: PyTorch's kernel with is_causal=True on our projections
    q, k, v = manual.c_attn(x).split(32, dim=2)
    heads = [t.view(3, T, 4, 8).transpose(1, 2) for t in (q, k, v)]
    y = torch.nn.functional.scaled_dot_product_attention(*heads, is_causal=True)
    reference = manual.c_proj(y.transpose(1, 2).reshape(3, T, 32))
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fused(x)[0], reference, atol=1e-6, rtol=1e-5)


def test_causal_mask_hides_the_future() -> None:
    """Changing token t changes no logit before t (the mask, seen from outside)."""
    torch.manual_seed(0)
    model = GPT(_config()).eval()
    idx = torch.randint(0, 61, (1, 20))
    changed = idx.clone()
    changed[0, 12] = (idx[0, 12] + 1) % 61
    a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :12], b[:, :12], atol=0, rtol=0)
    assert (a[:, 12:] - b[:, 12:]).abs().max() > 1e-3


def _to_hf(model: GPT) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    c = model.config
    hf_config = transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd,
        n_layer=c.n_layer, n_head=c.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, bos_token_id=0,
        eos_token_id=0, tie_word_embeddings=True)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = model.state_dict()
    with torch.no_grad():
        for name, parameter in hf.named_parameters():
            key = name.removeprefix("transformer.")
            if key == "lm_head.weight":
                source = ours["lm_head.weight"]
            elif key.endswith(".bias") and key not in ours:      # ours has bias=False
                source = torch.zeros_like(parameter)
            else:
                source = ours[key]
            # Conv1D stores (in, out): the transpose of nn.Linear's (out, in)
            if any(key.endswith(f"{m}.weight") for m in ("c_attn", "c_proj", "c_fc")):
                source = source.T
            parameter.copy_(source)
    return hf


@pytest.mark.parametrize("bias", [True, False])
def test_whole_model_equals_hugging_face_gpt2(bias: bool) -> None:
    torch.manual_seed(1)
    model = GPT(_config(bias=bias)).eval()
    with torch.no_grad():                       # not the zero-bias, unit-gain initialisation
        for name, parameter in model.named_parameters():
            if "ln" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    hf = _to_hf(model)
    idx = torch.randint(0, 61, (2, 24))
    ours = model(idx)[0]
    theirs = hf(idx).logits
    assert ours.abs().max() > 0.1               # a non-trivial comparison
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    # the same loss: HF shifts the labels inside, we take next-token targets
    loss = model(idx[:, :-1], idx[:, 1:])[1]
    assert loss is not None
    torch.testing.assert_close(loss, hf(idx, labels=idx).loss, atol=1e-5, rtol=1e-5)
