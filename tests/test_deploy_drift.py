"""The drift monitor of chapter 10: its statistics, calibration, alerts and errors.

One calibration of the shipped GAN (W = 128, 60 windows, alpha = 1%) serves the module.
The healthy test: 20 windows with seeds the calibration never used. At alpha = 1% per
window the expected number of false alarms is 0.2; the test allows 2, so a correctly
calibrated monitor fails it with probability P(Binomial(20, 0.01) >= 3) = 0.001 (and the
seeds are fixed, so it either passes or fails every time). A monitor whose rate were
10% would pass with probability 0.68 only, so the bar can fail.

The one-class test: 3 windows of each of the 10 classes (30 windows, fixed seeds). At
alpha = 1% the expected number of alarms is 0.3; the test allows 3, failed by a correctly
calibrated monitor with probability P(Binomial(30, 0.01) >= 4) = 0.0002 (measured: 2 of
these 30, 0 of 100 more with other seeds; before the mix-aware thresholds, 16 of 30).
A rate of 20% would pass with probability 0.12 only.
"""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
import torch

from aigc_course.compress.prune import magnitude_prune, with_generator
from aigc_course.deploy.drift import (
    FORMAT,
    VERSION,
    DriftCalibration,
    DriftMonitor,
    block_means,
    calibrate,
    confusion_matrix,
    draw_window,
    effective_classes,
    feature_threshold,
    gaussian_kernel,
    psi,
    stratified_mmd2,
)
from aigc_course.kinds import get
from aigc_course.metrics.distances import mmd2

WINDOW = 128
HEALTHY_WINDOWS = 20


@pytest.fixture(scope="module")
def gan():
    return get("gan").load()


@pytest.fixture(scope="module")
def calibration(gan):
    return calibrate(gan, window_size=WINDOW, windows=60, false_alarm_rate=0.01,
                     confusion_samples=4000, reference_size=600, simulations=2000)


def test_psi_matches_direct_computation():
    observed = torch.tensor([30, 0, 50, 20])
    expected = torch.tensor([25.0, 5.0, 45.0, 25.0])
    eps = 0.5
    p = [(c + eps) / (100 + 4 * eps) for c in (30, 0, 50, 20)]
    q = [(c + eps) / (100 + 4 * eps) for c in (25, 5, 45, 25)]
    direct = sum((a - b) * math.log(a / b) for a, b in zip(p, q, strict=True))
    assert psi(observed, expected) == pytest.approx(direct, rel=1e-12)
    assert psi(observed, observed.double()) == 0.0
    assert psi(observed, expected) == pytest.approx(psi(expected, observed.double()))
    with pytest.raises(ValueError, match="K >= 2"):
        psi(observed, expected[:3])


def test_mmd_one_group_is_the_u_statistic_of_mmd2():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=g), torch.randn(30, 5, generator=g) + 0.3
    sigma = 2.0
    gx, gy = torch.zeros(40, dtype=torch.long), torch.zeros(30, dtype=torch.long)
    b = block_means(gaussian_kernel(x, x, sigma), gx, 1)[0]
    ours = stratified_mmd2(b, gaussian_kernel(x, y, sigma), gx, gaussian_kernel(y, y, sigma),
                           gy, 1)
    assert ours == pytest.approx(mmd2(x, y, bandwidth=sigma), rel=1e-10)


def test_stratified_mmd_matches_the_block_sum():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, 3, generator=g), torch.randn(20, 3, generator=g)
    gx = torch.arange(30) % 3
    gy = torch.tensor([0] * 10 + [1] * 6 + [2] * 4)
    k = lambda a, b: gaussian_kernel(a, b, 1.5)  # noqa: E731
    pi = torch.tensor([10, 6, 4], dtype=torch.float64) / 20
    total = 0.0
    for c in range(3):
        for d in range(3):
            xc, xd, yc, yd = x[gx == c], x[gx == d], y[gy == c], y[gy == d]
            kxx, kyy = k(xc, xd), k(yc, yd)
            if c == d:                                             # pairs i != i'
                a = (kyy.sum() - kyy.trace()) / (len(yc) * (len(yc) - 1))
                b = (kxx.sum() - kxx.trace()) / (len(xc) * (len(xc) - 1))
            else:
                a, b = kyy.mean(), kxx.mean()
            total += float(pi[c] * pi[d] * (a + b - k(xc, yd).mean() - k(xd, yc).mean()))
    b_xx = block_means(k(x, x), gx, 3)[0]
    assert stratified_mmd2(b_xx, k(x, y), gx, k(y, y), gy, 3) == pytest.approx(total,
                                                                                rel=1e-10)


def test_confusion_matrix_rows():
    c = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    assert c.shape == (3, 3) and torch.allclose(c.sum(dim=1), torch.ones(3, dtype=c.dtype))
    assert c[2, 1] == pytest.approx(0.5, abs=1e-2)
    assert confusion_matrix(torch.tensor([0, 0, 1]), None, 3).shape == (1, 3)


def test_calibration_numbers(calibration):
    assert calibration.window_size == WINDOW and calibration.false_alarm_rate == 0.01
    assert calibration.conditional and calibration.num_classes == 10
    mean, std = calibration.null_feature
    assert abs(mean) < 4 * std                       # healthy vs healthy: null mean 0
    assert calibration.threshold_feature > mean
    assert calibration.healthy_exceedances[1] <= 2    # expected 0.3 of 60 windows


def test_feature_thresholds_rise_as_the_mix_narrows(calibration):
    table = calibration.feature_thresholds            # mixes of 1, 2, 5 and 10 classes
    n_eff = [row[0] for row in table]
    assert len(table) == 4 and n_eff[0] == 1.0 and 9 < n_eff[-1] < 10
    assert n_eff == sorted(n_eff)
    levels = [row[1] for row in table]
    assert levels == sorted(levels, reverse=True)     # measured 2.4e-3 ... 3.2e-4
    assert levels[-1] == calibration.threshold_feature
    assert feature_threshold(table, 0.5) == levels[0] and \
        feature_threshold(table, 50.0) == levels[-1]  # clamped at the ends
    middle = math.sqrt(n_eff[0] * n_eff[1])           # halfway in log n_eff
    assert feature_threshold(table, middle) == pytest.approx((levels[0] + levels[1]) / 2)


def test_effective_classes():
    assert effective_classes(torch.tensor([3] * 8), 10) == 1.0
    assert effective_classes(torch.tensor([1, 2] * 4), 10) == pytest.approx(2.0)
    assert effective_classes(torch.tensor([0, 0, 0, 1]), 10) == pytest.approx(1 / (9 / 16 +
                                                                                   1 / 16))
    assert effective_classes(None, 10) == 1.0


def test_draw_window_over_a_set_of_classes(gan):
    _, labels = draw_window(gan, 64, 0, classes=[2, 7])
    assert labels is not None and set(labels.tolist()) == {2, 7}
    assert torch.equal(draw_window(gan, 8, 0)[1], draw_window(gan, 8, 0, classes=None)[1])


def test_calibration_round_trips_through_json(calibration, tmp_path):
    path = calibration.save(tmp_path / "drift.json")
    loaded = DriftCalibration.load(path)
    assert loaded == calibration and loaded.feature_thresholds == calibration.feature_thresholds


def test_healthy_model_raises_no_alert(gan, calibration):
    monitor = DriftMonitor(calibration)
    for seed in range(HEALTHY_WINDOWS):               # not the calibration's seeds
        images, labels = draw_window(gan, WINDOW, seed)
        monitor.observe(images, labels)
    status = monitor.status()
    assert status.windows == HEALTHY_WINDOWS and status.observed == HEALTHY_WINDOWS * WINDOW
    assert status.alerts <= 2
    assert status.ms_per_window > 0                   # recorded (a speed, not asserted)


def test_traffic_of_one_class_is_not_drift(gan, calibration):
    monitor = DriftMonitor(calibration)
    for label in range(10):                           # 3 windows of only one class each
        for seed in range(3):
            monitor.observe(*draw_window(gan, WINDOW, 3000 + 10 * label + seed, label=label))
    status = monitor.status()
    assert status.windows == 30 and status.alerts <= 3          # module docstring
    assert status.threshold_feature == calibration.feature_thresholds[0][1]   # n_eff = 1


def test_over_pruned_model_alerts_in_the_first_window(gan, calibration):
    pruned = with_generator(gan, magnitude_prune(gan.generator, 0.8))
    monitor = DriftMonitor(calibration)
    for start in range(0, WINDOW, 32):                # requests of 32 images each
        images, labels = draw_window(pruned, 32, 900 + start)
        results = monitor.observe(images, labels)
    assert results and results[0].alert               # within the first W = 128 images
    status = monitor.status()
    assert status.alert and status.first_alert_window == 0
    assert status.threshold_feature == results[0].threshold_feature
    assert status.score_feature > 10 * status.threshold_feature - 9 * \
        calibration.null_feature[0]


def test_status_before_any_window_and_partial_windows(calibration, gan):
    monitor = DriftMonitor(calibration)
    status = monitor.status()
    assert status.windows == 0 and math.isnan(status.score_class) and not status.alert
    assert math.isnan(status.threshold_feature) and math.isnan(status.threshold_class)
    images, labels = draw_window(gan, WINDOW + 10, 7)
    assert len(monitor.observe(images, labels)) == 1
    assert monitor.status().pending == 10
    assert set(status.as_dict()) >= {"score_class", "score_feature", "alert", "windows"}


def test_observe_is_thread_safe(calibration, gan):
    monitor = DriftMonitor(calibration)
    images, labels = draw_window(gan, WINDOW, 11)

    def work() -> None:
        for start in range(0, WINDOW, 16):
            monitor.observe(images[start:start + 16], labels[start:start + 16])

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        monitor.status()
        thread.join()
    status = monitor.status()
    assert status.windows == 2 and status.pending == 0 and status.observed == 2 * WINDOW


def test_bad_input_is_refused(calibration, gan):
    monitor = DriftMonitor(calibration)
    images, labels = draw_window(gan, 8, 3)
    with pytest.raises(ValueError, match="images must be"):
        monitor.observe(torch.zeros(8, 1, 8, 8), labels)
    with pytest.raises(ValueError, match="images must be"):
        monitor.observe(images[0], labels)
    with pytest.raises(ValueError, match="7 labels for 8 images"):
        monitor.observe(images, labels[:7])
    with pytest.raises(ValueError, match="pass the requested labels"):
        monitor.observe(images)
    with pytest.raises(ValueError, match="labels must be integers"):
        monitor.observe(images, labels + 10)
    assert monitor.status().observed == 0


def test_foreign_calibration_files_are_refused(tmp_path, calibration):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else", "version": 1}))
    with pytest.raises(ValueError, match=f"expected '{FORMAT}'"):
        DriftCalibration.load(other)
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x80\x81 not json")
    with pytest.raises(ValueError, match="not a drift calibration"):
        DriftCalibration.load(garbage)
    data = json.loads(calibration.save(tmp_path / "ok.json").read_text())
    data["version"] = 99
    (tmp_path / "new.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="version 99"):
        DriftCalibration.load(tmp_path / "new.json")
    old = {k: v for k, v in data.items() if k not in ("feature_thresholds", "confusion_counts")}
    old["version"] = 1                                # one feature threshold for every mix
    (tmp_path / "v1.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="version 1; .*recalibrate"):
        DriftCalibration.load(tmp_path / "v1.json")
    unsorted = dict(data, version=VERSION,
                    feature_thresholds=data["feature_thresholds"][::-1])
    (tmp_path / "unsorted.json").write_text(json.dumps(unsorted))
    with pytest.raises(ValueError, match="increasing n_eff"):
        DriftCalibration.load(tmp_path / "unsorted.json")
    del data["bandwidth"]
    data["version"] = VERSION
    (tmp_path / "missing.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="bad fields"):
        DriftCalibration.load(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError):
        DriftCalibration.load(tmp_path / "absent.json")


def test_load_monitor_and_gauges(calibration, gan, tmp_path):
    from aigc_course.deploy.drift import load_monitor

    monitor = load_monitor(calibration.save(tmp_path / "drift.json"), gan)
    monitor.observe(*draw_window(gan, WINDOW, 21))
    gauges = monitor.gauges()
    assert gauges["drift_windows"] == 1.0 and gauges["drift_alert"] in (0.0, 1.0)
    assert gauges["drift_threshold_feature"] == monitor.history()[0].threshold_feature
    assert all(isinstance(v, float) for v in gauges.values())


def drift_gauges(client) -> dict[str, float]:
    readings = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("aigc_drift{"):
            name = line.split('reading="')[1].split('"')[0]
            readings[name] = float(line.split()[-1])
    return readings


@pytest.mark.parametrize("degraded", [False, True])
def test_the_service_exposes_the_alert_at_metrics(gan, calibration, tmp_path, degraded):
    """Behind the real app: the over-pruned checkpoint raises ``drift_alert`` at
    ``/metrics`` within W = 128 requested samples (4 requests of 32); the healthy one,
    on the same requests, does not (one window: the test's own false-alarm chance is the
    calibrated 1%, and the seeds are fixed)."""
    from fastapi.testclient import TestClient

    from aigc_course.deploy.service import ServeConfig, create_app

    model = with_generator(gan, magnitude_prune(gan.generator, 0.8)) if degraded else gan
    checkpoint = get("gan").save(model, tmp_path / "served.pt", {"dataset": "digits"})
    calibration.save(tmp_path / "cal.json")
    app = create_app(ServeConfig(str(checkpoint), drift=str(tmp_path / "cal.json")))
    with TestClient(app) as client:
        assert drift_gauges(client) == {}                   # no window yet
        for seed in range(4):
            assert client.post("/v1/generate", json={"n": 32, "seed": 500 + seed}
                               ).status_code == 200
        deadline = time.monotonic() + 30                    # the monitor runs after replying
        while drift_gauges(client).get("drift_windows", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        gauges = drift_gauges(client)
    assert gauges["drift_windows"] == 1
    assert gauges["drift_alert"] == float(degraded)
