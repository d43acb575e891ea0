"""Cost and value (chapter 11): what a sample costs on this machine, and whether it pays.

Two halves, the second built on the first:

* **Measured cost.** :func:`measure_costs` times candidates (a function ``B -> B items``)
  in alternated rounds (each round times every candidate once, starting with a different
  one: :func:`aigc_course.compress.measure.compare_latency`'s rotation, here timing a fixed
  count of items on two clocks) and keeps, per 1,000 items, the median wall seconds on a
  given thread count and the median CPU seconds of the process (``time.process_time``,
  every thread summed). A price turns them into dollars:

  $$\\text{CPU-h}_{1000} = s^{\\text{CPU}}_{1000} / 3600, \\qquad
  \\$_{1000} = \\text{CPU-h}_{1000} \\cdot p_{\\text{vCPU-h}} \\quad (1)$$

  and, for what an instance held for the job bills (its $k$ vCPUs, busy or not),
  $\\$^{\\text{billed}}_{1000} = k\\, s^{\\text{wall}}_{1000} / 3600 \\cdot p_{\\text{vCPU-h}}$ (2).
  A GPU row is priced per GPU-hour of wall time, $\\$_{1000} = s^{\\text{wall}}_{1000} / 3600
  \\cdot p_{\\text{GPU-h}}$ (3), and exists only where a GPU time was measured (:func:`gpu_row`,
  or :func:`measure_costs` with ``gpu=``): no GPU throughput is guessed here.
  :func:`standard_candidates` builds the shipped models' samplers (GAN fp32 and int8, VAE,
  DDPM with DDIM 50 / 10 and DPM-Solver++(2M) 10, chapter 06's GPT per token, BM25 retrieval
  per query); :func:`latency_budget` says which rows answer a request within a budget.
* **Business cases.** A :class:`BusinessCase` is named :class:`Assumption` values (each with
  a range, a unit and a one-line source) and two functions of them, the monthly value $V$
  and cost $C$; its net is $N = V - C$ (4). :func:`standard_cases` writes the seed's three
  scenarios (ad creatives, customer service, content creation) with the model-side cost
  per item taken from measured :class:`CostRow` s, never typed in. :func:`sensitivity` moves
  one assumption at a time to its low and high end (the tornado diagram of decision
  analysis, Howard 1988, "Decision analysis: practice and promise"); :func:`break_even`
  solves $N(x^*) = 0$ for one assumption by bisection; :func:`break_even_volume` is the
  volume $q^* = F / m$ (5) at which the unit margin $m$ pays back the fixed monthly cost $F$
  ($N$ is affine in volume: $N = m q - F$).

Simplified: every model here is tiny (16x16 digits, a 2-layer character GPT), so its cost
per item is far below a production model's; the cases show how to carry a measured cost
into a decision, and how small the model's share is next to the people around it. The
prices are stated list prices (:class:`Prices`), not quotes; human costs are assumptions.
Sensitivity is one-at-a-time (no interactions); a prompt's tokens are not priced apart
from the generated ones.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from aigc_course import kinds
from aigc_course.utils import num_threads

Int8Path = Literal["onnx", "pt2e", "dynamic"]
INT8_PATHS: tuple[str, ...] = ("onnx", "pt2e", "dynamic")


# --- prices and measured cost ---------------------------------------------------------

@dataclass(frozen=True)
class Prices:
    """List prices the measured times are multiplied by (assumptions, stated).

    Attributes:
        usd_per_vcpu_hour: on-demand price of one vCPU for an hour.
        usd_per_gpu_hour: GPU class -> on-demand price of one GPU for an hour.
        source: where the numbers come from, and when.
    """

    usd_per_vcpu_hour: float = 0.0446
    usd_per_gpu_hour: Mapping[str, float] = field(
        default_factory=lambda: {"T4": 0.526, "H100": 12.29})
    source: str = ("AWS EC2 on-demand, us-east-1, Linux, 2024 list prices (not checked "
                   "offline): c7i.large $0.08925/h for 2 vCPU; g4dn.xlarge (1 T4) $0.526/h; "
                   "p5.48xlarge (8 H100) $98.32/h, cut in 2025: check current prices")

    def __post_init__(self) -> None:
        if not self.usd_per_vcpu_hour > 0 or any(not p > 0 for p in
                                                 self.usd_per_gpu_hour.values()):
            raise ValueError("prices must be positive")

    def gpu(self, name: str) -> float:
        """$ per hour of GPU class ``name`` (ValueError listing the priced ones)."""
        if name not in self.usd_per_gpu_hour:
            raise ValueError(f"no price for GPU {name!r}; priced: "
                             f"{', '.join(self.usd_per_gpu_hour)}")
        return self.usd_per_gpu_hour[name]


@dataclass(frozen=True)
class CostRow:
    """What 1,000 items (samples, tokens, queries) of one model cost, measured.

    Attributes:
        model, variant: what ran (``"diffusion (05)"``, ``"DDIM 50"``).
        batch_size: items per call.
        seconds_per_1000: median wall seconds per 1,000 items.
        cpu_seconds_per_1000: median process CPU seconds per 1,000 items (NaN on a GPU).
        usd_per_1000: eq. (1) on a CPU, eq. (3) on a GPU.
        unit: what an item is. units_per_item: items per sample of a call (a GPT
            sample of 64 tokens: 64 token items).
        device: ``"cpu"`` or the GPU class priced. threads: torch CPU threads.
        n: items timed per round. rounds: wall seconds per 1,000 of each round.
        cpu_rounds: CPU seconds per 1,000 of each round.
        usd_per_hour: the price used.
    """

    model: str
    variant: str
    batch_size: int
    seconds_per_1000: float
    cpu_seconds_per_1000: float
    usd_per_1000: float
    unit: str = "sample"
    units_per_item: int = 1
    device: str = "cpu"
    threads: int = 1
    n: int = 0
    rounds: tuple[float, ...] = ()
    cpu_rounds: tuple[float, ...] = ()
    usd_per_hour: float = math.nan

    @property
    def spread(self) -> float:
        """(max - min) / median of the rounds' wall times: the machine's noise."""
        return (max(self.rounds) - min(self.rounds)) / self.seconds_per_1000 if self.rounds \
            else 0.0

    @property
    def usd_range(self) -> tuple[float, float]:
        """$ per 1,000 at the cheapest and dearest round (the same basis as ``usd_per_1000``)."""
        basis = self.rounds if self.device != "cpu" else self.cpu_rounds
        if not basis:
            return self.usd_per_1000, self.usd_per_1000
        return min(basis) / 3600 * self.usd_per_hour, max(basis) / 3600 * self.usd_per_hour

    @property
    def usd_per_1000_billed(self) -> float:
        """Eq. (2): the vCPUs held for the wall time, busy or not (a GPU row: eq. (3))."""
        if self.device != "cpu":
            return self.usd_per_1000
        return self.threads * self.seconds_per_1000 / 3600 * self.usd_per_hour

    @property
    def ms_per_request(self) -> float:
        """Wall ms of one call: ``batch_size`` samples of ``units_per_item`` items."""
        return self.seconds_per_1000 * self.batch_size * self.units_per_item  # s/1000 = ms/item


@dataclass(frozen=True)
class Candidate:
    """One thing to time: ``fn(B)`` makes ``B`` samples of ``units_per_item`` items each.

    Attributes:
        n: items per round for this candidate (``None``: :func:`measure_costs`' ``n``);
            a slow sampler takes fewer.
    """

    model: str
    variant: str
    fn: Callable[[int], object]
    unit: str = "sample"
    units_per_item: int = 1
    n: int | None = None


def _candidate(name: str, c: Candidate | Callable[[int], object]) -> Candidate:
    if isinstance(c, Candidate):
        return c
    model, _, variant = name.partition(" / ")
    return Candidate(model, variant, c)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()     # CUDA runs asynchronously: wait for it


@torch.no_grad()
def measure_costs(candidates: Mapping[str, Candidate | Callable[[int], object]], *,
                  n: int = 64, rounds: int = 5, batch_sizes: Sequence[int] = (16,),
                  threads: int | None = 1, prices: Prices | None = None,
                  gpu: str | None = None, warmup: int = 1) -> list[CostRow]:
    """Median wall and CPU seconds per 1,000 items of each candidate, priced.

    Per batch size, each candidate is warmed up, then each round times every candidate
    (rotated order) making ``ceil(n / B)`` calls of ``B`` samples on both clocks.

    Args:
        candidates: name -> :class:`Candidate`, or a function ``B -> object`` (its name
            ``"model / variant"``, unit ``"sample"``).
        n: samples per round and candidate (rounded up to whole batches).
        rounds: timed rounds (at least 3 for a median).
        batch_sizes: ``B`` of each call; one row per candidate and batch size.
        threads: torch CPU threads while timing (``None``: as is).
        prices: the price list (default :class:`Prices`).
        gpu: the GPU class the candidates run on (priced by eq. (3); needs CUDA).
        warmup: untimed calls per candidate and batch size.

    Returns:
        One :class:`CostRow` per batch size and candidate, in that order.

    Raises:
        ValueError: fewer than 3 rounds, no candidates, ``n`` or a batch size below 1,
            or ``gpu`` without CUDA or without a price.
    """
    prices = prices or Prices()
    if rounds < 3:
        raise ValueError(f"rounds must be at least 3 for a median, got {rounds}")
    if not candidates:
        raise ValueError("no candidates to time")
    if n < 1 or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"n and batch sizes must be >= 1, got n={n}, {tuple(batch_sizes)}")
    if gpu is not None and not torch.cuda.is_available():
        raise ValueError(f"gpu={gpu!r} needs a CUDA device; none here (rows are CPU rows)")
    usd_per_hour = prices.gpu(gpu) if gpu is not None else prices.usd_per_vcpu_hour
    cands = [_candidate(name, c) for name, c in candidates.items()]
    rows = []
    with num_threads(threads):
        for b in batch_sizes:
            calls = [math.ceil((c.n or n) / b) for c in cands]
            wall: list[list[float]] = [[] for _ in cands]
            cpu: list[list[float]] = [[] for _ in cands]
            for c in cands:
                for _ in range(warmup):
                    c.fn(b)
            for r in range(rounds):
                for i in [*range(r % len(cands), len(cands)), *range(r % len(cands))]:
                    items = calls[i] * b * cands[i].units_per_item
                    w0, c0 = time.perf_counter(), time.process_time()
                    for _ in range(calls[i]):
                        cands[i].fn(b)
                    _sync()
                    wall[i].append((time.perf_counter() - w0) / items * 1000)
                    cpu[i].append((time.process_time() - c0) / items * 1000)
            for c, k, w, p in zip(cands, calls, wall, cpu, strict=True):
                s, s_cpu = statistics.median(w), statistics.median(p)
                basis = s if gpu is not None else s_cpu
                rows.append(CostRow(
                    c.model, c.variant, b, s, math.nan if gpu else s_cpu,
                    basis / 3600 * usd_per_hour, c.unit, c.units_per_item, gpu or "cpu",
                    torch.get_num_threads(), k * b * c.units_per_item, tuple(w),
                    () if gpu else tuple(p), usd_per_hour))           # eqs. (1) and (3)
    return rows


def gpu_row(model: str, variant: str, batch_size: int, seconds_per_1000: float, gpu: str,
            prices: Prices | None = None, unit: str = "sample", units_per_item: int = 1
            ) -> CostRow:
    """A row priced by eq. (3) from a GPU time measured elsewhere (e.g. chapter 09 on Colab).

    Raises:
        ValueError: a non-positive time, or a GPU class without a price.
    """
    if not seconds_per_1000 > 0:
        raise ValueError(f"seconds_per_1000 must be a measured positive time, got "
                         f"{seconds_per_1000}")
    price = (prices or Prices()).gpu(gpu)
    return CostRow(model, variant, batch_size, seconds_per_1000, math.nan,
                   seconds_per_1000 / 3600 * price, unit, units_per_item, gpu, 0, 0,
                   usd_per_hour=price)


def cost_table(rows: Sequence[CostRow]) -> Any:
    """A pandas table of ``rows``: wall and CPU seconds, spread, $ (eqs. 1-3), ms per call."""
    import pandas as pd

    return pd.DataFrame([{
        "model": r.model, "variant": r.variant, "unit": r.unit, "batch": r.batch_size,
        "device": r.device, "threads": r.threads, "n": r.n, "rounds": len(r.rounds),
        "s / 1000": r.seconds_per_1000, "CPU-s / 1000": r.cpu_seconds_per_1000,
        "spread": r.spread, "$ / 1000": r.usd_per_1000, "$ / 1000 billed": r.usd_per_1000_billed,
        "ms / call": r.ms_per_request} for r in rows])


def latency_budget(rows: Sequence[CostRow], budget_ms: float = 200.0) -> Any:
    """Which rows answer one call (``batch_size`` samples) within ``budget_ms`` of wall time."""
    import pandas as pd

    if not budget_ms > 0:
        raise ValueError(f"budget_ms must be positive, got {budget_ms}")
    return pd.DataFrame([{"model": r.model, "variant": r.variant, "batch": r.batch_size,
                          "unit": r.unit, "units per call": r.batch_size * r.units_per_item,
                          "ms / call": r.ms_per_request, "budget ms": budget_ms,
                          "meets": r.ms_per_request <= budget_ms} for r in rows])


def find_row(rows: Sequence[CostRow], model: str, variant: str | None = None,
             batch_size: int | None = None) -> CostRow:
    """The matching row (several: the largest batch, the throughput one).

    Raises:
        ValueError: no match, listing the rows there are.
    """
    match = [r for r in rows if r.model == model and variant in (None, r.variant)
             and batch_size in (None, r.batch_size)]
    if not match:
        have = sorted({f"{r.model} / {r.variant} (batch {r.batch_size})" for r in rows})
        raise ValueError(f"no cost row {model!r} / {variant!r} (batch {batch_size}); "
                         f"valid: {'; '.join(have)}")
    return max(match, key=lambda r: r.batch_size)


def standard_candidates(*, ddim_steps: Sequence[int] = (50, 10), solver_steps: Sequence[int]
                        = (10,), guidance: float | None = None, int8: Int8Path = "onnx",
                        gpt_profile: str = "smoke", tokens_per_sample: int = 64,
                        ddpm_n: int = 16, gpt_n: int = 16, retrieval: bool = True,
                        seed: int = 0, models: Mapping[str, Any] | None = None,
                        lm: Any = None) -> dict[str, Candidate]:
    """The chapters' models' samplers as :func:`measure_costs` candidates.

    GAN (03) fp32, int8 (chapter 09's :func:`~aigc_course.compress.quantize.onnx_int8`,
    ``pt2e_int8`` or ``dynamic_int8``: a few seconds to build) and with half its channels
    (:func:`~aigc_course.compress.prune.prune_channels`, rebuilt smaller layers; its quality
    after fine-tuning is chapter 09's table), VAE (04), diffusion (05)
    with DDIM and DPM-Solver++(2M) at chapter 05's guidance, the GPT of
    ``kinds.load_or_train("gpt", gpt_profile)`` per generated token, and BM25 over chapter
    06's support set per query. Every candidate draws fresh noise each call, as a server does.

    Args:
        ddim_steps, solver_steps: the diffusion samplers' steps.
        guidance: the diffusion $w$ (``None``: chapter 05's).
        int8: which int8 path quantises the GAN's generator.
        gpt_profile: the GPT's profile. tokens_per_sample: tokens per GPT sample.
        ddpm_n, gpt_n: samples per round of each diffusion candidate and of the GPT
            (they are slow; the others take :func:`measure_costs`' ``n``).
        retrieval: add the BM25 candidate. seed: the noise generators' seed.
        models: ``{"gan", "vae", "ddpm"}`` -> the models to price (``None``: the shipped
            16x16 digits ones). lm: the GPT (``None``: ``load_or_train("gpt",
            gpt_profile)``).

    Raises:
        ValueError: an unknown ``int8`` path (listing the valid ones).
    """
    from aigc_course.compress import quantize
    from aigc_course.profiles import DiffusionProfile, resolve

    if int8 not in INT8_PATHS:
        raise ValueError(f"unknown int8 path {int8!r}; valid: {', '.join(INT8_PATHS)}")
    g = torch.Generator().manual_seed(seed)

    def labels(b: int) -> torch.Tensor:
        return torch.arange(b) % 10

    chosen = {k: kinds.get(k).load() for k in ("gan", "vae", "ddpm")} if models is None \
        else dict(models)
    gan, vae, ddpm = (chosen[k] for k in ("gan", "vae", "ddpm"))
    G = gan.generator.eval()
    if int8 == "onnx":
        with tempfile.TemporaryDirectory(prefix="aigc-11-") as work:
            G8: Callable[..., torch.Tensor] = quantize.onnx_int8(G, work)[0]  # session in memory
    elif int8 == "pt2e":
        G8 = quantize.pt2e_int8(G, warmup=(1, 16))[0]
    else:
        G8 = quantize.dynamic_int8(G)
    latent = G.config.latent_dim
    c: dict[str, Candidate] = {}

    def add(cand: Candidate) -> None:
        c[f"{cand.model} / {cand.variant}"] = cand

    add(Candidate("GAN (03)", "fp32", lambda b: gan.sample(b, y=labels(b), generator=g)))
    add(Candidate("GAN (03)", f"int8 {int8}",
                  lambda b: G8(torch.randn(b, latent, generator=g), labels(b))))
    from aigc_course.compress.prune import prune_channels, with_generator
    from aigc_course.models.gan import DCGANGenerator

    if isinstance(G, DCGANGenerator):                    # not the MLP GAN: no channels
        small = with_generator(gan, prune_channels(G, 0.5)).eval()      # chapter 09's rebuild
        add(Candidate("GAN (03)", "channels 50%",
                      lambda b: small.sample(b, y=labels(b), generator=g)))
    add(Candidate("VAE (04)", "fp32", lambda b: vae.sample(b, generator=g)))
    w = resolve("cpu", cls=DiffusionProfile).guidance if guidance is None else guidance
    def diffusion(steps: int, sampler: str) -> Callable[[int], object]:
        return lambda b: ddpm.sample(b, y=labels(b), generator=g, steps=steps, guidance=w,
                                     sampler=sampler)

    for sampler, name, all_steps in (("ddim", "DDIM", ddim_steps),
                                     ("dpm++2m", "DPM-Solver++(2M)", solver_steps)):
        for s in all_steps:
            add(Candidate("diffusion (05)", f"{name} {s}", diffusion(s, sampler), n=ddpm_n))
    lm = kinds.load_or_train("gpt", gpt_profile).model if lm is None else lm
    add(Candidate("GPT (06)", f"{gpt_profile}, {tokens_per_sample} tokens",
                  lambda b: lm.sample(b, generator=g, max_new_tokens=tokens_per_sample),
                  unit="token", units_per_item=tokens_per_sample, n=gpt_n))
    if retrieval:
        from aigc_course.text.support import make_support_set

        support = make_support_set(seed=seed)
        index, questions = support.retriever(), [q.question for q in support.held_out]
        add(Candidate("BM25 (06)", "top-1", lambda b: [
            index.search(questions[i % len(questions)]) for i in range(b)], unit="query"))
    return c


# --- business cases ---------------------------------------------------------------------

@dataclass(frozen=True)
class Assumption:
    """One input of a business case: a value, its plausible range, its unit and source.

    Raises:
        ValueError: not ``low <= value <= high`` (finite), or an empty unit or source.
    """

    value: float
    low: float
    high: float
    unit: str
    source: str = "assumed"

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.value, self.low, self.high)):
            raise ValueError(f"assumption values must be finite, got {self}")
        if not self.low <= self.value <= self.high:
            raise ValueError(f"need low <= value <= high, got low={self.low}, "
                             f"value={self.value}, high={self.high}")
        if not self.unit.strip() or not self.source.strip():
            raise ValueError("every assumption states its unit and its source ('assumed')")


def row_assumption(row: CostRow, unit: str) -> Assumption:
    """A measured row's $ per item (median; range: the cheapest and dearest rounds)."""
    low, high = row.usd_range
    value = row.usd_per_1000 / 1000
    return Assumption(value, min(low / 1000, value), max(high / 1000, value), unit,
                      f"measured: {row.model} {row.variant}, batch {row.batch_size}, "
                      f"{row.device}, {row.threads} thread(s), median of {len(row.rounds)} "
                      f"rounds of {row.n} {row.unit}s, at ${row.usd_per_hour:.4g}/h")


class Values(dict[str, float]):
    """Assumption name -> value; an unknown name raises ``ValueError`` listing the valid."""

    def __missing__(self, key: str) -> float:
        raise ValueError(f"unknown assumption {key!r}; valid: {', '.join(self)}")


@dataclass(frozen=True)
class BusinessCase:
    """A scenario's monthly value and cost as functions of named assumptions.

    Attributes:
        name: the scenario.
        assumptions: name -> :class:`Assumption`.
        value_fn, cost_fn: ``Values -> $ per month``.
        volume: the assumption counting units per month (:func:`break_even_volume`).
        fixed_cost: the fixed $ per month assumption that volume pays back.
        key: the assumption whose break-even the summary reports.
    """

    name: str
    assumptions: Mapping[str, Assumption]
    value_fn: Callable[[Values], float]
    cost_fn: Callable[[Values], float]
    volume: str
    fixed_cost: str
    key: str

    def __post_init__(self) -> None:
        for name in (self.volume, self.fixed_cost, self.key):
            self._check(name)
        self.net()                      # every name the functions use must exist

    def _check(self, name: str) -> None:
        if name not in self.assumptions:
            raise ValueError(f"unknown assumption {name!r}; valid: {', '.join(self.assumptions)}")

    def values(self, **overrides: float) -> Values:
        """The assumptions' values with ``overrides`` (any number: a what-if)."""
        for name in overrides:
            self._check(name)
        return Values({k: a.value for k, a in self.assumptions.items()} | overrides)

    def with_assumptions(self, **changes: float | Assumption) -> BusinessCase:
        """A copy with new values (kept in their ranges) or whole new :class:`Assumption` s."""
        new = dict(self.assumptions)
        for name, change in changes.items():
            self._check(name)
            try:
                new[name] = change if isinstance(change, Assumption) else replace(
                    new[name], value=float(change))
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
        return replace(self, assumptions=new)

    def monthly_value(self, **overrides: float) -> float:
        """$ per month the scenario earns or saves."""
        return float(self.value_fn(self.values(**overrides)))

    def monthly_cost(self, **overrides: float) -> float:
        """$ per month it costs (the fixed cost included)."""
        return float(self.cost_fn(self.values(**overrides)))

    def net(self, **overrides: float) -> float:
        """Eq. (4): $N = V - C$ per month."""
        return self.monthly_value(**overrides) - self.monthly_cost(**overrides)


def sensitivity(case: BusinessCase, names: Sequence[str] | None = None) -> Any:
    """One at a time, each assumption at its low and high end: a table sorted by swing.

    Returns:
        A pandas table: assumption, unit, low, value, high, net at low, net at high,
        swing ``|net(high) - net(low)|``, source; the largest swing first.
    """
    import pandas as pd

    rows = []
    for name in names or list(case.assumptions):
        case.values(**{name: 0.0})            # refuses an unknown name
        a = case.assumptions[name]
        lo, hi = case.net(**{name: a.low}), case.net(**{name: a.high})
        rows.append({"assumption": name, "unit": a.unit, "low": a.low, "value": a.value,
                     "high": a.high, "net at low": lo, "net at high": hi,
                     "swing": abs(hi - lo), "source": a.source})
    return pd.DataFrame(rows).sort_values("swing", ascending=False, kind="stable"
                                          ).reset_index(drop=True)


def plot_tornado(case: BusinessCase, top: int | None = 10) -> Any:
    """The tornado diagram of :func:`sensitivity`: net per month at each end, widest on top.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    table = sensitivity(case).head(top).to_dict("records")[::-1]      # widest on top
    base = case.net()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(table) + 1.5))
    for i, row in enumerate(table):
        for end, color in (("net at low", "C0"), ("net at high", "C3")):
            ax.barh(i, row[end] - base, left=base, color=color, alpha=0.8,
                    label=end.replace("net at ", "assumption ") if i == 0 else None)
    ax.set_yticks(range(len(table)), [f"{r['assumption']} ({r['unit']})" for r in table],
                  fontsize=8)
    ax.axvline(base, color="black", lw=1)
    ax.axvline(0, color="grey", ls=":", lw=1)
    ax.set(xlabel="net $ per month", title=f"{case.name}: net {base:,.0f} $/month; "
           "one assumption at a time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def break_even(case: BusinessCase, variable: str, lo: float | None = None,
               hi: float | None = None, tol: float = 1e-10, max_expand: int = 60) -> float:
    """The value $x^*$ of one assumption at which the net is 0, by bisection.

    Bisection needs only a sign change, so it also solves a net that is not affine in
    ``variable``; ``tol`` is relative to the bracket's ends.

    The bracket starts at ``[lo, hi]`` (default: the assumption's ``[0, high]``, or
    ``[low, high]`` when ``low < 0``) and doubles its upper end until the net changes sign.

    Raises:
        ValueError: an unknown name, or no sign change up to ``hi * 2**max_expand``.
    """
    case.values(**{variable: 0.0})
    a = case.assumptions[variable]
    lo = (min(a.low, 0.0) if lo is None else lo)
    hi = (a.high if hi is None else hi)

    def f(x: float) -> float:
        return case.net(**{variable: x})

    f_lo, f_hi = f(lo), f(hi)
    for _ in range(max_expand):
        if f_lo * f_hi <= 0:
            break
        hi = hi * 2 if hi > 0 else hi + 1
        f_hi = f(hi)
    else:
        raise ValueError(f"{case.name}: the net does not cross 0 for {variable} in "
                         f"[{lo:g}, {hi:g}] (net {f_lo:,.2f} to {f_hi:,.2f})")
    if f_lo == 0:
        return lo
    for _ in range(400):                            # halves the bracket each time
        if hi - lo <= tol * max(abs(lo), abs(hi)):
            break
        mid = (lo + hi) / 2
        f_mid = f(mid)
        if f_mid == 0:
            return mid
        if (f_mid < 0) == (f_lo < 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return (lo + hi) / 2


def break_even_volume(case: BusinessCase) -> float:
    """Eq. (5): units per month at which the unit margin pays back the fixed monthly cost."""
    return break_even(case, case.volume, lo=0.0)


def summary(case: BusinessCase) -> dict[str, Any]:
    """Value, cost and net per month; the break-even of the key assumption, of the volume,
    and of each model cost per item (the most a model may cost before the case stops paying)."""
    key, volume = case.assumptions[case.key], case.assumptions[case.volume]
    out: dict[str, Any] = {"case": case.name, "value $/month": case.monthly_value(),
                           "cost $/month": case.monthly_cost(), "net $/month": case.net(),
                           "key": case.key, "key value": key.value, "key unit": key.unit}
    model_costs = [k for k in case.assumptions if k.startswith("model_usd_per_")]
    solve = {"key break-even": (case.key, None), "break-even volume": (case.volume, 0.0),
             **{f"break-even {k}": (k, None) for k in model_costs}}
    for label, (name, lo) in solve.items():      # a model cost's break-even: the headroom
        try:
            out[label] = break_even(case, name, lo=lo)
        except ValueError:
            out[label] = math.nan                  # never pays (or never loses)
    out.update({"volume": case.volume, "volume value": volume.value,
                "volume unit": volume.unit})
    return out


def _cases_assumptions(spec: Mapping[str, tuple[float, float, float, str, str]]
                       ) -> dict[str, Assumption]:
    return {k: Assumption(*v) for k, v in spec.items()}


def ad_creatives(image_cost: Assumption) -> BusinessCase:
    """Ad creatives: generated drafts a designer reviews; accepted ones save design hours.

    $V = c\\,n\\,a\\,(h_d - h_f)\\,r$, $C = c\\,n\\,(t_r r / 3600 + p_{img}) + F$.
    """
    a = _cases_assumptions({
        "campaigns_per_month": (10, 2, 40, "campaigns/month", "assumed"),
        "images_per_campaign": (300, 100, 1000, "drafts/campaign", "assumed"),
        "acceptance_rate": (0.03, 0.005, 0.1, "accepted/draft", "assumed"),
        "designer_hours_per_creative": (2.0, 0.5, 4.0, "h/creative", "assumed"),
        "finishing_hours_per_accepted": (0.5, 0.1, 1.5, "h/accepted draft", "assumed"),
        "designer_usd_per_hour": (40.0, 28.0, 60.0, "$/h", "assumed: about a US graphic "
                                  "designer's median wage (BLS) x1.4 overhead, not checked"),
        "review_seconds_per_draft": (20.0, 5.0, 60.0, "s/draft", "assumed"),
        "fixed_usd_per_month": (1500.0, 500.0, 5000.0, "$/month", "assumed: engineering "
                                "and hosting"),
    }) | {"model_usd_per_image": image_cost}

    def drafts(v: Values) -> float:
        return v["campaigns_per_month"] * v["images_per_campaign"]

    return BusinessCase(
        "ad creatives", a,
        lambda v: drafts(v) * v["acceptance_rate"] * (v["designer_hours_per_creative"]
                                                      - v["finishing_hours_per_accepted"])
        * v["designer_usd_per_hour"],
        lambda v: drafts(v) * (v["review_seconds_per_draft"] / 3600 * v["designer_usd_per_hour"]
                               + v["model_usd_per_image"]) + v["fixed_usd_per_month"],
        volume="campaigns_per_month", fixed_cost="fixed_usd_per_month", key="acceptance_rate")


def customer_service(token_cost: Assumption, query_cost: Assumption) -> BusinessCase:
    """Customer service: every ticket is retrieved for; the answered share saves a human.

    $V = T s h$, $C = T p_q + T s (k p_{tok} + e (h + \\pi)) + F$: a false answer (rate $e$)
    still goes to a human, plus a penalty $\\pi$.
    """
    a = _cases_assumptions({
        "tickets_per_month": (5000, 1000, 20000, "tickets/month", "assumed"),
        "answered_share": (0.35, 0.15, 0.6, "answered/ticket", "assumed; chapter 06 "
                           "measures its assistant's answered rate behind the hand-over"),
        "false_answer_rate": (0.08, 0.02, 0.2, "false/answered", "assumed; chapter 06 "
                              "measures its false-answer rate"),
        "human_usd_per_ticket": (6.0, 3.0, 15.0, "$/ticket", "assumed"),
        "penalty_usd_per_false_answer": (15.0, 5.0, 50.0, "$/false answer",
                                         "assumed: goodwill, churn risk"),
        "tokens_per_answer": (100.0, 24.0, 400.0, "tokens/answer", "assumed (chapter 06 "
                              "answers in at most 24)"),
        "fixed_usd_per_month": (3000.0, 1000.0, 8000.0, "$/month", "assumed: engineering "
                                "and hosting"),
    }) | {"model_usd_per_token": token_cost, "retrieval_usd_per_query": query_cost}
    return BusinessCase(
        "customer service", a,
        lambda v: v["tickets_per_month"] * v["answered_share"] * v["human_usd_per_ticket"],
        lambda v: v["tickets_per_month"] * (
            v["retrieval_usd_per_query"] + v["answered_share"] * (
                v["tokens_per_answer"] * v["model_usd_per_token"] + v["false_answer_rate"]
                * (v["human_usd_per_ticket"] + v["penalty_usd_per_false_answer"])))
        + v["fixed_usd_per_month"],
        volume="tickets_per_month", fixed_cost="fixed_usd_per_month", key="answered_share")


def content_creation(token_cost: Assumption, image_cost: Assumption) -> BusinessCase:
    """Content creation: generated drafts (text and images) edited instead of written.

    $V = m (h_w - h_e) r$, $C = m d (k p_{tok} + i p_{img}) + F$.
    """
    a = _cases_assumptions({
        "articles_per_month": (40, 10, 200, "articles/month", "assumed"),
        "writer_hours_per_article": (4.0, 2.0, 8.0, "h/article", "assumed"),
        "editing_hours_per_article": (2.0, 0.75, 3.5, "h/article", "assumed"),
        "writer_usd_per_hour": (36.0, 25.0, 60.0, "$/h", "assumed: about a US writer's "
                                "median wage (BLS), not checked"),
        "tokens_per_article": (1500.0, 800.0, 3000.0, "tokens/draft", "assumed"),
        "images_per_article": (2.0, 0.0, 5.0, "images/draft", "assumed"),
        "drafts_per_article": (3.0, 1.0, 6.0, "drafts/article", "assumed"),
        "fixed_usd_per_month": (800.0, 200.0, 3000.0, "$/month", "assumed: engineering "
                                "and hosting"),
    }) | {"model_usd_per_token": token_cost, "model_usd_per_image": image_cost}
    return BusinessCase(
        "content creation", a,
        lambda v: v["articles_per_month"] * (v["writer_hours_per_article"]
                                             - v["editing_hours_per_article"])
        * v["writer_usd_per_hour"],
        lambda v: v["articles_per_month"] * v["drafts_per_article"] * (
            v["tokens_per_article"] * v["model_usd_per_token"]
            + v["images_per_article"] * v["model_usd_per_image"]) + v["fixed_usd_per_month"],
        volume="articles_per_month", fixed_cost="fixed_usd_per_month",
        key="editing_hours_per_article")


def standard_cases(rows: Sequence[CostRow], image: tuple[str, str] = ("diffusion (05)",
                   "DDIM 50"), text: tuple[str, str | None] = ("GPT (06)", None),
                   query: tuple[str, str | None] = ("BM25 (06)", None)
                   ) -> dict[str, BusinessCase]:
    """The seed's three scenarios, their model-side costs from the measured ``rows``.

    Args:
        rows: :func:`measure_costs` (and :func:`gpu_row`) rows.
        image, text, query: ``(model, variant)`` of the rows priced per image, per token
            and per retrieval query (the largest batch measured of each).
    """
    image_cost = row_assumption(find_row(rows, *image), "$/image")
    token_cost = row_assumption(find_row(rows, *text), "$/token")
    query_cost = row_assumption(find_row(rows, *query), "$/query")
    return {"ad creatives": ad_creatives(image_cost),
            "customer service": customer_service(token_cost, query_cost),
            "content creation": content_creation(token_cost, image_cost)}
