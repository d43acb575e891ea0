"""The green-list text watermark (Kirchenbauer et al. 2023): its z-test against scipy, its
green lists, detection of marked generations, silence on human text, bad keys and ids."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from scipy import stats

from aigc_course import kinds
from aigc_course.models.gpt import GPT, GPTConfig, generate
from aigc_course.provenance import green_list as gl
from aigc_course.provenance.keys import save_key
from aigc_course.train.gpt import TextData, prepare_text

SEEDS = (11, 12, 13)                 # key seeds of the measured bars


@pytest.fixture(scope="module")
def text() -> TextData:
    """The course's pydoc corpus, char tokenizer (103 ids), with its held-out splits."""
    return prepare_text("pydoc", "char")


def random_gpt(vocab_size: int, seed: int, block_size: int = 256) -> GPT:
    """An untrained GPT: nearly uniform next-token distributions (entropy ~ log V)."""
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=1, n_head=2,
                         n_embd=32)).eval()


# --- the z-test (paper eq. 2) ------------------------------------------------------------

def test_z_is_the_binomial_standard_score_and_its_p_value_is_normal() -> None:
    gamma = 0.25
    for tokens, green in [(16, 9), (200, 75), (256, 64), (10_000, 2_700)]:
        z = float(gl.z_from_counts(torch.tensor([green]), torch.tensor([tokens]), gamma)[0])
        binomial = stats.binom(tokens, gamma)
        assert z == pytest.approx((green - binomial.mean()) / binomial.std(), rel=1e-12)
        assert gl.p_value(z) == pytest.approx(stats.norm.sf(z), rel=1e-9)
    # the normal approximation of the exact one-sided binomial test P(S >= s) at z ~ 4:
    # measured exact / normal = 1.18 at T = 10,000 and 2.76 at T = 200 (binomial skew),
    # so on short texts z > 4 is a false-positive rate of a few 1e-5, not 3e-5
    for tokens, low, high in ((10_000, 1.0, 1.4), (200, 2.0, 3.5)):
        green = math.ceil(gamma * tokens + 4 * math.sqrt(tokens * gamma * (1 - gamma)))
        z = float(gl.z_from_counts(torch.tensor([green]), torch.tensor([tokens]), gamma)[0])
        assert 4 <= z < 4.1
        assert low < stats.binom.sf(green - 1, tokens, gamma) / gl.p_value(z) < high


def test_z_on_uniform_random_tokens_is_standard_normal() -> None:
    # iid uniform tokens are each green with probability |G|/V, whatever came before:
    # |s|_G ~ Binomial(T, |G|/V) exactly. 4,000 texts of T = 200: measured mean 0.018,
    # sd 1.008 (standard errors 0.016 and 0.011); bars at ~5 standard errors
    key = gl.GreenListKey(5, 103)
    ids = torch.randint(0, 103, (4000, 201), generator=torch.Generator().manual_seed(0))
    green, tokens = gl.green_counts(ids, key, "all")
    assert (tokens == 200).all()
    z = gl.z_scores(ids, key, "all")
    assert abs(float(z.mean())) < 0.08 and abs(float(z.std()) - 1) < 0.06
    # the green counts' histogram against scipy's binomial pmf (chi-square, 8 bins)
    edges = [0, 40, 44, 47, 49, 51, 54, 58, 201]
    seen = torch.histogram(green.double(), torch.tensor(edges, dtype=torch.double)).hist
    pmf = stats.binom(200, key.green_fraction).pmf(range(201))
    expected = [4000 * pmf[a:b].sum() for a, b in zip(edges[:-1], edges[1:], strict=True)]
    assert stats.chisquare(seen.numpy(), expected).pvalue > 1e-3


def test_z_scores_match_a_token_by_token_count() -> None:
    key = gl.GreenListKey(7, 30)
    ids = torch.randint(0, 30, (3, 120), generator=torch.Generator().manual_seed(1))
    lists = {p: set(gl.green_list(key, p).tolist()) for p in range(30)}
    for row, z_row in zip(ids, gl.z_scores(ids, key, "unique"), strict=True):
        pairs = list(zip(row[:-1].tolist(), row[1:].tolist(), strict=True))
        for count, chosen in (("all", pairs), ("unique", sorted(set(pairs)))):
            green = sum(token in lists[previous] for previous, token in chosen)
            t, gamma = len(chosen), key.green_size / 30
            expected = (green - gamma * t) / math.sqrt(t * gamma * (1 - gamma))   # eq. 2
            assert gl.z_score(row, key, count) == pytest.approx(expected, abs=1e-9)  # type: ignore[arg-type]
        assert float(z_row) == pytest.approx(gl.z_score(row, key), abs=1e-12)
        assert len(set(pairs)) < len(pairs)                # repeats did occur (V = 30)


# --- the green lists ----------------------------------------------------------------------

def test_green_mask_has_a_gamma_fraction_per_row_and_depends_on_the_key() -> None:
    key = gl.GreenListKey(3, 103)
    mask = gl.green_mask(key)
    assert mask.shape == (103, 103) and mask.dtype == torch.bool
    assert (mask.sum(1) == 25).all()                          # floor(0.25 * 103)
    assert abs(key.green_fraction - key.gamma) < 1 / 103
    assert float(mask.double().mean()) == pytest.approx(key.green_fraction)
    for previous in (0, 50, 102):                             # the rows are Algorithm 2's lists
        assert set(mask[previous].nonzero().flatten().tolist()) == set(
            gl.green_list(key, previous).tolist())
    assert torch.equal(mask, gl.green_mask(gl.GreenListKey(3, 103, delta=5.0)))
    other = gl.green_mask(gl.GreenListKey(4, 103))
    # two keys agree on a token as often as chance: g^2 + (1-g)^2 = 0.632 (measured 0.636)
    agree = float((mask == other).double().mean())
    assert abs(agree - (key.green_fraction ** 2 + (1 - key.green_fraction) ** 2)) < 0.02
    # each token is green after about gamma V of the previous tokens, with binomial spread:
    # variance V g (1 - g) = 18.9; measured 16.1 here, 13.8 / 20.9 / 22.7 for keys 11-13
    assert 8 < float(mask.sum(0).double().var()) < 36


def test_spike_entropy_bound_holds_for_random_green_lists() -> None:
    # Theorem 4.2: over random green lists, P(green) >= gamma alpha S / (1 + (alpha-1) gamma)
    gamma, delta, vocab = 0.25, 2.0, 40
    zeta, alpha = gl.spike_modulus(gamma, delta), math.exp(delta)
    uniform = torch.full((vocab,), 1 / vocab)
    assert float((uniform / (1 + zeta * uniform)).sum()) == pytest.approx(1 / (1 + zeta / vocab))
    generator = torch.Generator().manual_seed(0)
    for concentration in (0.05, 0.5, 5.0):                     # spiky to flat
        p = torch.distributions.Dirichlet(torch.full((vocab,), concentration)).sample()
        lists = torch.stack([torch.randperm(vocab, generator=generator)[: vocab // 4]
                             for _ in range(4000)])            # (4000, |G|)
        green_mass = p[lists].sum(1)
        p_green = alpha * green_mass / (alpha * green_mass + 1 - green_mass)  # softmax + delta
        spike = float((p / (1 + zeta * p)).sum())
        assert float(p_green.mean()) >= gl.green_bound(spike, gamma, delta) - 0.01


# --- generation and detection --------------------------------------------------------------

def test_delta_zero_draws_the_tokens_generate_draws() -> None:
    gpt = random_gpt(50, 0)
    prompt = torch.randint(0, 50, (2, 5), generator=torch.Generator().manual_seed(0))
    # block_size 16: past it both loops crop the context and drop the cache
    for model, top_k in ((gpt, None), (gpt, 10), (random_gpt(50, 1, block_size=16), None)):
        ours = gl.generate_watermarked(model, gl.GreenListKey(1, 50, delta=0.0), prompt, 30,
                                       top_k=top_k, generator=torch.Generator().manual_seed(3))
        theirs = generate(model, prompt, 30, top_k=top_k,
                          generator=torch.Generator().manual_seed(3))
        assert torch.equal(ours, theirs)
        marked = gl.generate_watermarked(model, gl.GreenListKey(1, 50), prompt, 30,
                                         top_k=top_k, generator=torch.Generator().manual_seed(3))
        assert not torch.equal(marked, theirs) and torch.equal(marked[:, :5], prompt)
    greedy = gl.generate_watermarked(gpt, gl.GreenListKey(1, 50, delta=50.0), prompt, 30,
                                     temperature=0.0)
    # a huge delta makes every greedy token green
    assert gl.detect(greedy[0, 4:], gl.GreenListKey(1, 50))["green_fraction"] == 1.0


def test_marked_generations_are_detected_at_200_tokens(text: TextData) -> None:
    # an untrained GPT (entropy 4.63 nats, log 103 = 4.63): 3 keys x 8 texts of T = 200;
    # measured z min 11.6 / 14.4 / 13.9 (means 14.4-15.3), unmarked max z 2.4. Bars: every
    # text above the threshold 4 (100%), and min z > 6 (about half the measured minimum)
    vocab = text.tokenizer.vocab_size
    for i, seed in enumerate(SEEDS):
        key = gl.GreenListKey(seed, vocab)
        prompts = gl.prompts_from(text.val, 8, 8, seed=i)
        run = gl.watermarked_generation(random_gpt(vocab, i), key, prompts, 200,
                                        generator=torch.Generator().manual_seed(i))
        scored = run.ids[:, 7:]                                # the prompt's last token + 200
        z = gl.z_scores(scored, key)
        assert float(z.min()) > 6
        assert all(gl.detect(row, key)["watermarked"] for row in scored)
        # Theorem 4.2 on 1,600 tokens (standard error 0.012): measured 0.688-0.715 >= 0.690
        green, tokens = gl.green_counts(scored, key, "all")
        bound = gl.green_bound(float(run.spike_entropy.mean()), key.green_fraction, key.delta)
        assert float(green.sum() / tokens.sum()) > bound - 0.04
        assert float(run.entropy.mean()) == pytest.approx(math.log(vocab), abs=0.05)


def test_human_text_stays_below_the_threshold(text: TextData) -> None:
    # 107 held-out windows of 200 scored characters per key. Unique pairs: measured max z
    # 1.51 / 1.38 / 1.64, means -0.21 / -0.78 / -0.15, sd 0.66 / 0.65 / 0.74. Counting
    # every pair instead (the paper's first count) repeats the corpus' common bigrams:
    # sd 4.0 / 2.2 / 2.4 and 17% / 1% / 1% of human windows above 4
    windows = gl.windows(text.test, 201)
    spreads = []
    for seed in SEEDS:
        key = gl.GreenListKey(seed, text.tokenizer.vocab_size)
        z = gl.z_scores(windows, key)
        assert not (z > 4).any() and float(z.max()) < 3.3
        assert abs(float(z.mean())) < 1.5 and 0.3 < float(z.std()) < 1.3
        spreads.append(float(gl.z_scores(windows, key, "all").std()))
    assert min(spreads) > 1.5                                   # why "unique" is the default
    human = text.tokenizer.decode(text.test[:500].tolist())
    report = gl.detect(human, gl.GreenListKey(SEEDS[0], text.tokenizer.vocab_size),
                       text.tokenizer)
    assert not report["watermarked"] and 0 < int(report["tokens"]) <= 499


@pytest.mark.slow
def test_smoke_gpt_detection_and_perplexity_cost(text: TextData) -> None:
    # the smoke GPT (40 steps, 4.9 bits/char, entropy 3.58 nats: a unigram model), 8
    # prompts. Measured for keys 11-13: detection at T = 200 100% (mean z 10.2-10.5; bar
    # z > 5), at T = 16 25-50%; no false positive on unmarked generations or on 107-1,265
    # human windows. The same 8 prompts x 64 tokens: perplexity 33.8 unmarked, 33.5-37.0
    # at delta 2 (noise), 38.7-41.7 at delta 5; mean z 6.4-7.5 at delta 2, 12.4-12.5 at 5
    lm = kinds.load_or_train("gpt", "smoke", progress=False).model
    key = gl.GreenListKey(SEEDS[0], lm.config.vocab_size)
    prompts = gl.prompts_from(text.val, 8, 16, seed=0)
    table = gl.detection_vs_length(lm, key, prompts, text.test, lengths=(16, 64, 200))
    assert list(table["tokens"]) == [16, 64, 200]
    last = table.iloc[-1]
    assert last["detection_rate"] == 1.0 and last["z_marked"] > 5
    assert (table["fpr_human"] == 0).all() and (table["fpr_generated"] <= 1 / 8).all()
    assert table["z_marked"].is_monotonic_increasing
    cost = gl.perplexity_cost(lm, key, prompts, max_new_tokens=64, deltas=(0.0, 2.0, 5.0))
    plain, marked, strong = (cost.iloc[i] for i in range(3))
    # unmarked sampling at temperature 1: E[-log p] is the entropy, so log ppl ~ H
    assert math.log(plain["perplexity"]) == pytest.approx(plain["entropy"], abs=0.1)
    assert plain["detection_rate"] == 0 and strong["z"] > marked["z"] > 4
    assert strong["perplexity"] > plain["perplexity"]
    assert strong["green_fraction"] > strong["green_bound"] - 0.05


# --- keys and bad input ------------------------------------------------------------------

def test_key_round_trip_and_foreign_keys_refused(tmp_path: Path) -> None:
    key = gl.GreenListKey.new(103, gamma=0.5, delta=1.5)
    assert gl.GreenListKey.load(key.save(tmp_path / "k.pt")) == key
    save_key(tmp_path / "tree.pt", "tree_ring", {"seed": 1, "radius": 10})
    with pytest.raises(ValueError, match="'tree_ring' key, not a 'green_list'"):
        gl.GreenListKey.load(tmp_path / "tree.pt")
    save_key(tmp_path / "bad.pt", "green_list", {"seed": 1})
    with pytest.raises(ValueError, match="damaged"):
        gl.GreenListKey.load(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a key")
    with pytest.raises(ValueError, match="not a watermark key"):
        gl.GreenListKey.load(tmp_path / "junk.pt")


def test_bad_input_is_refused(text: TextData) -> None:
    small = gl.GreenListKey(1, 40)
    with pytest.raises(ValueError, match=r"\[102\] are outside the key's vocabulary of 40"):
        gl.detect([3, 5, 102], small)
    with pytest.raises(ValueError, match="the key is for 40 tokens, the tokenizer has 103"):
        gl.detect("print(x)", small, text.tokenizer)
    with pytest.raises(ValueError, match="needs the tokenizer"):
        gl.detect("print(x)", small)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        gl.detect([3], small)
    with pytest.raises(ValueError, match="valid: unique, all"):
        gl.z_scores(torch.zeros(1, 5, dtype=torch.long), small, "most")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the key is for 40 tokens, the model has 50"):
        gl.generate_watermarked(random_gpt(50, 0), small, torch.zeros(1, 1, dtype=torch.long), 3)
    for bad in ({"gamma": 0.0}, {"gamma": 1.0}, {"delta": -1.0}, {"vocab_size": 1}):
        with pytest.raises(ValueError):
            gl.GreenListKey(**{"seed": 1, "vocab_size": 40, **bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="green tokens"):
        gl.GreenListKey(1, 3, gamma=0.2)
