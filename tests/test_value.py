"""Chapter 11's cost and value: the price arithmetic, the timing loop, break-even and
sensitivity against closed forms, and bad input refused."""

from __future__ import annotations

import math
import time

import pytest
import torch
from scipy.optimize import brentq

from aigc_course.reports import value as v

PRICES = v.Prices(usd_per_vcpu_hour=0.05, usd_per_gpu_hour={"T4": 0.5, "H100": 10.0},
                  source="test prices")


def row(model: str = "m", variant: str = "a", batch: int = 16, wall: float = 7.2,
        cpu: float = 3.6, unit: str = "sample", rounds: tuple[float, ...] = (3.0, 3.6, 5.4),
        threads: int = 2) -> v.CostRow:
    """A CPU row priced at PRICES, eq. (1), from CPU seconds per 1,000."""
    return v.CostRow(model, variant, batch, wall, cpu, cpu / 3600 * 0.05, unit, 1, "cpu",
                     threads, 64, (6.0, 7.2, 9.0), rounds, 0.05)


def test_cost_arithmetic_seconds_to_cpu_hours_to_dollars() -> None:
    r = row()
    # 3.6 CPU-s / 1000 = 0.001 CPU-h / 1000 -> $0.00005; billed: 2 vCPU x 7.2 s = 0.004 h
    assert r.usd_per_1000 == pytest.approx(5e-5, rel=1e-12)
    assert r.usd_per_1000_billed == pytest.approx(0.004 * 0.05, rel=1e-12)
    assert r.usd_range == pytest.approx((3.0 / 3600 * 0.05, 5.4 / 3600 * 0.05))
    assert r.spread == pytest.approx((9.0 - 6.0) / 7.2)
    assert r.ms_per_request == pytest.approx(7.2 * 16)        # 7.2 ms per sample x 16
    g = v.gpu_row("m", "a", 64, 36.0, "T4", PRICES)           # eq. (3): 0.01 GPU-h x $0.5
    assert g.usd_per_1000 == pytest.approx(0.005) and g.usd_per_1000_billed == g.usd_per_1000
    assert math.isnan(g.cpu_seconds_per_1000) and g.device == "T4"
    table = v.cost_table([r, g])
    assert list(table["$ / 1000"]) == pytest.approx([5e-5, 0.005])


def test_measure_costs_counts_calls_and_both_clocks() -> None:
    calls: list[int] = []

    def spin(b: int) -> None:                   # 1 ms of CPU per sample, no sleep
        calls.append(b)
        end = time.process_time() + 1e-3 * b
        while time.process_time() < end:
            pass

    rows = v.measure_costs({"spin / 1 ms": spin, "count / free": lambda b: calls.append(-b)},
                           n=10, rounds=3, batch_sizes=(4, 1), prices=PRICES)
    assert [(r.model, r.variant, r.batch_size) for r in rows] == [
        ("spin", "1 ms", 4), ("count", "free", 4), ("spin", "1 ms", 1), ("count", "free", 1)]
    # n = 10 rounds up to 3 calls of 4 (12 samples); per batch size 1 warm-up + 3 rounds
    assert calls.count(4) == 1 + 3 * 3 and calls.count(1) == 1 + 3 * 10
    spin4 = rows[0]
    assert spin4.n == 12 and len(spin4.rounds) == len(spin4.cpu_rounds) == 3
    # the CPU clock sees 1 s per 1,000 (the spin overshoots by a clock tick); wall >= CPU
    assert 1.0 <= spin4.cpu_seconds_per_1000 < 1.5
    assert spin4.seconds_per_1000 >= 0.9 * spin4.cpu_seconds_per_1000
    assert spin4.usd_per_1000 == pytest.approx(spin4.cpu_seconds_per_1000 / 3600 * 0.05)
    assert rows[1].cpu_seconds_per_1000 < 0.2 * spin4.cpu_seconds_per_1000
    assert spin4.threads == 1


def test_measure_costs_token_units_and_bad_input() -> None:
    cand = v.Candidate("lm", "tiny", lambda b: torch.zeros(b, 8), unit="token",
                       units_per_item=8, n=2)
    (r,) = v.measure_costs({"x": cand}, n=100, rounds=3, batch_sizes=(2,))
    assert r.unit == "token" and r.n == 16          # 1 call of 2 samples x 8 tokens
    with pytest.raises(ValueError, match="at least 3"):
        v.measure_costs({"x": cand}, rounds=2)
    with pytest.raises(ValueError, match="no candidates"):
        v.measure_costs({})
    with pytest.raises(ValueError, match=">= 1"):
        v.measure_costs({"x": cand}, batch_sizes=(0,))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            v.measure_costs({"x": cand}, gpu="T4")
    with pytest.raises(ValueError, match="priced: T4, H100"):
        v.gpu_row("m", "a", 1, 1.0, "A100", PRICES)
    with pytest.raises(ValueError, match="measured positive"):
        v.gpu_row("m", "a", 1, 0.0, "T4", PRICES)
    with pytest.raises(ValueError, match="positive"):
        v.Prices(usd_per_vcpu_hour=-1.0)
    with pytest.raises(ValueError, match="valid: onnx, pt2e, dynamic"):
        v.standard_candidates(int8="fp16")  # type: ignore[arg-type]


def test_latency_budget_and_find_row() -> None:
    rows = [row(batch=1, wall=150.0), row(batch=16, wall=20.0), row("n", "b", 16, 5.0)]
    table = v.latency_budget(rows, 200)
    assert list(table["meets"]) == [True, False, True]     # 150 ms; 320 ms; 80 ms
    assert v.find_row(rows, "m").batch_size == 16           # several: the largest batch
    assert v.find_row(rows, "m", "a", 1).batch_size == 1
    with pytest.raises(ValueError, match=r"valid: m / a \(batch 1\); m / a \(batch 16\)"):
        v.find_row(rows, "gan")
    with pytest.raises(ValueError, match="positive"):
        v.latency_budget(rows, 0)


def measured_rows() -> list[v.CostRow]:
    return [row("diffusion (05)", "DDIM 50", cpu=46.0), row("GPT (06)", "smoke", cpu=0.05,
            unit="token"), row("BM25 (06)", "top-1", cpu=0.06, unit="query")]


def test_assumptions_are_validated() -> None:
    with pytest.raises(ValueError, match="low <= value <= high"):
        v.Assumption(2.0, 0.0, 1.0, "h")
    with pytest.raises(ValueError, match="finite"):
        v.Assumption(math.nan, 0.0, 1.0, "h")
    with pytest.raises(ValueError, match="unit and its source"):
        v.Assumption(0.5, 0.0, 1.0, " ")
    case = v.standard_cases(measured_rows())["ad creatives"]
    valid = "valid: campaigns_per_month, images_per_campaign, acceptance_rate"
    for bad in (lambda: case.net(acceptance=0.1), lambda: v.break_even(case, "acceptance"),
                lambda: case.with_assumptions(accept=0.1), lambda: v.sensitivity(case, ["x"])):
        with pytest.raises(ValueError, match=valid):
            bad()
    with pytest.raises(ValueError, match="acceptance_rate: need low <= value <= high"):
        case.with_assumptions(acceptance_rate=0.5)          # outside its stated range
    with pytest.raises(ValueError, match="unknown assumption 'nope'"):
        v.BusinessCase("bad", case.assumptions, lambda x: x["nope"], lambda x: 0.0,
                       "campaigns_per_month", "fixed_usd_per_month", "acceptance_rate")


def test_model_costs_come_from_the_rows() -> None:
    cases = v.standard_cases(measured_rows())
    image = cases["ad creatives"].assumptions["model_usd_per_image"]
    assert image.value == pytest.approx(46.0 / 3600 * 0.05 / 1000)
    assert image.low == pytest.approx(3.0 / 3600 * 0.05 / 1000)   # the cheapest round
    assert image.source.startswith("measured: diffusion (05) DDIM 50, batch 16")
    assert cases["customer service"].assumptions["model_usd_per_token"].unit == "$/token"
    assert cases["content creation"].assumptions["model_usd_per_image"] == image


def test_ad_creatives_net_and_break_even_match_closed_forms() -> None:
    case = v.standard_cases(measured_rows())["ad creatives"]
    x = case.values()
    drafts = x["campaigns_per_month"] * x["images_per_campaign"]
    hours = x["designer_hours_per_creative"] - x["finishing_hours_per_accepted"]
    rate, per_draft = x["designer_usd_per_hour"], (x["review_seconds_per_draft"] / 3600
                                                    * x["designer_usd_per_hour"]
                                                    + x["model_usd_per_image"])
    net = drafts * (x["acceptance_rate"] * hours * rate - per_draft) - x["fixed_usd_per_month"]
    assert case.net() == pytest.approx(net, rel=1e-12)
    # N = 0 at a* = (drafts * per_draft + F) / (drafts * hours * rate)
    a_star = (drafts * per_draft + x["fixed_usd_per_month"]) / (drafts * hours * rate)
    assert v.break_even(case, "acceptance_rate") == pytest.approx(a_star, rel=1e-8)
    # eq. (5): campaigns c* = F / m, m the margin of one campaign
    m = x["images_per_campaign"] * (x["acceptance_rate"] * hours * rate - per_draft)
    assert v.break_even_volume(case) == pytest.approx(x["fixed_usd_per_month"] / m, rel=1e-8)
    s = v.summary(case)
    assert s["net $/month"] == pytest.approx(net) and s["key break-even"] == pytest.approx(a_star)
    # the model-cost headroom: per_draft's model part may grow until N = 0
    head = (drafts * (x["acceptance_rate"] * hours * rate - x["review_seconds_per_draft"] / 3600
                      * rate) - x["fixed_usd_per_month"]) / drafts
    assert s["break-even model_usd_per_image"] == pytest.approx(head, rel=1e-8)


def test_customer_service_and_content_break_even() -> None:
    cases = v.standard_cases(measured_rows())
    cs = cases["customer service"]
    x = cs.values()
    T, F = x["tickets_per_month"], x["fixed_usd_per_month"]
    per_answer = (x["tokens_per_answer"] * x["model_usd_per_token"] + x["false_answer_rate"]
                  * (x["human_usd_per_ticket"] + x["penalty_usd_per_false_answer"]))
    # N(s) = T s (h - per_answer) - T p_q - F = 0
    s_star = (T * x["retrieval_usd_per_query"] + F) / (T * (x["human_usd_per_ticket"]
                                                            - per_answer))
    assert v.break_even(cs, "answered_share") == pytest.approx(s_star, rel=1e-8)
    margin = x["answered_share"] * (x["human_usd_per_ticket"] - per_answer) \
        - x["retrieval_usd_per_query"]
    assert v.break_even_volume(cs) == pytest.approx(F / margin, rel=1e-8)
    cc = cases["content creation"]
    root = brentq(lambda e: cc.net(editing_hours_per_article=e), 0.0, 8.0, xtol=1e-12)
    assert v.break_even(cc, "editing_hours_per_article") == pytest.approx(root, rel=1e-8)


def test_break_even_of_a_nonlinear_case_and_no_crossing() -> None:
    a = {"x": v.Assumption(1.0, 0.0, 3.0, "unit"), "f": v.Assumption(2.0, 0.0, 4.0, "$")}
    case = v.BusinessCase("square", a, lambda p: p["x"] ** 2, lambda p: p["f"], "x", "f", "x")
    assert v.break_even(case, "x") == pytest.approx(math.sqrt(2), rel=1e-9)
    assert v.break_even(case, "f") == pytest.approx(1.0, rel=1e-9)          # f* = x^2
    case = case.with_assumptions(x=v.Assumption(0.5, 0.0, 0.9, "unit"))
    assert v.break_even(case, "x") == pytest.approx(math.sqrt(2))  # past high: bracket grows
    never = v.BusinessCase("never", a, lambda p: -1.0 - p["x"] ** 2, lambda p: p["f"], "x", "f",
                           "x")
    with pytest.raises(ValueError, match="does not cross 0"):
        v.break_even(never, "x", max_expand=5)
    assert math.isnan(v.summary(never)["key break-even"])


def test_sensitivity_is_sorted_by_swing_and_matches_slopes() -> None:
    case = v.standard_cases(measured_rows())["content creation"]
    table = v.sensitivity(case)
    assert list(table["swing"]) == sorted(table["swing"], reverse=True)
    assert set(table["assumption"]) == set(case.assumptions)
    by = table.set_index("assumption")
    fixed = case.assumptions["fixed_usd_per_month"]
    assert by.loc["fixed_usd_per_month", "swing"] == pytest.approx(fixed.high - fixed.low)
    x = case.values()        # dN/dh_w = m r, so the swing is m r (high - low)
    w = case.assumptions["writer_hours_per_article"]
    assert by.loc["writer_hours_per_article", "swing"] == pytest.approx(
        x["articles_per_month"] * x["writer_usd_per_hour"] * (w.high - w.low))
    assert by.loc["writer_hours_per_article", "net at low"] < case.net() < \
        by.loc["writer_hours_per_article", "net at high"]
    assert table["assumption"].iloc[-1].startswith("model_usd")   # the model's cost: smallest


def test_plot_tornado_draws_two_bars_per_assumption() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = v.standard_cases(measured_rows())["customer service"]
    fig = v.plot_tornado(case, top=4)
    ax = fig.axes[0]
    assert len(ax.patches) == 8 and len(ax.get_yticklabels()) == 4
    assert ax.get_yticklabels()[-1].get_text().startswith(v.sensitivity(case)["assumption"][0])
    plt.close(fig)
