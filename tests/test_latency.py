"""The calibrated roofline's formula (archdsl/backends/latency.py), by hand."""
import pytest

from archdsl.backends import latency


def test_weights_prepared_apart_from_the_activations():
    # peak 1e10 MAC/s, bw 1e10 B/s; conv: e 0.5, m 0.5, w 2e9 B/s, overhead 10 µs
    m = latency.machine(1e10, 1e10, {"conv": 0.5}, {"conv": 0.5}, {"conv": 1e-5}, {}, (), {"conv": 2e9})
    # 1e6 MACs -> 200 µs; 4e6 bytes of which 3e6 weights: activations 1e6 / 5e9 -> 200 µs; weights 3e6 / 2e9 -> 1.5 ms
    assert latency.seconds(1e6, 4e6, "conv", (8, 10, 10), m, 3e6) == pytest.approx(2e-4 + 1.5e-3 + 1e-5)
    # the same weights at batch 8 (8x the MACs and activations): prepared once
    assert latency.seconds(8e6, 3e6 + 8e6, "conv", (8, 10, 10), m, 3e6) == pytest.approx(1.6e-3 + 1.5e-3 + 1e-5)


def test_a_class_without_w_keeps_its_weights_among_the_bytes():
    # an earlier calibration's preset (no weight_bw): max(compute, all bytes / (bw m)) + overhead, as before
    m = latency.machine(1e10, 1e10, {"gemm": 0.5}, {"gemm": 0.5}, {"gemm": 1e-5}, {})
    assert latency.seconds(1e6, 4e6, "gemm", (8, 1, 1), m, 3e6) == pytest.approx(8e-4 + 1e-5)
    assert latency.seconds(0, 0, "gemm", (8, 1, 1), m, 0) == 0.0  # an identity runs no kernel


def test_misaligned_channels_slow_the_kernel_not_the_weights_or_overhead():
    # depthwise: e 1, m 1, aligned to 16 channels, 2.5x as long off them; weights 1e9 B/s, overhead 10 µs
    m = latency.machine(1e10, 1e10, {"depthwise": 1.0}, {"depthwise": 1.0}, {"depthwise": 1e-5}, {}, (),
                        {"depthwise": 1e9}, {"depthwise": 16}, {"depthwise": 2.5})
    # 1e6 MACs -> 100 µs (activations 1e6 bytes -> 100 µs); weights 1e3 / 1e9 -> 1 µs
    aligned = 1e-4 + 1e-6 + 1e-5
    assert latency.seconds(1e6, 1e6 + 1e3, "depthwise", (48, 10, 10), m, 1e3, 48) == pytest.approx(aligned)
    assert latency.seconds(1e6, 1e6 + 1e3, "depthwise", (40, 10, 10), m, 1e3, 40) == pytest.approx(
        2.5e-4 + 1e-6 + 1e-5)
    # a layer without vector channels (0), and another class, never slowed
    assert latency.seconds(1e6, 1e6 + 1e3, "depthwise", (40, 10, 10), m, 1e3, 0) == pytest.approx(aligned)
    assert latency.seconds(1e6, 1e6, "conv", (40, 10, 10), m, 0, 40) == pytest.approx(1e-4)


def test_a_preset_without_channels_last_classes_uses_the_plain_ones():
    # an earlier calibration: no conv1x1_cl figures; a 1x1 conv on channels-last tensors takes conv1x1's
    m = latency.machine(1e10, 1e10, {"conv1x1": 0.5}, {"conv1x1": 0.25}, {"conv1x1": 2e-5}, {"conv1x1": 8.0})
    plain = latency.seconds(1e6, 4e6, "conv1x1", (8, 2, 2), m)
    assert latency.seconds(1e6, 4e6, "conv1x1_cl", (8, 2, 2), m) == plain == pytest.approx(
        max(1e6 / 5e9 * (1 + (8 / 4) ** 2), 4e6 / 2.5e9) + 2e-5)
    # a preset that has them keeps its own
    m2 = latency.machine(1e10, 1e10, {"conv1x1": 0.5, "conv1x1_cl": 1.0}, {"conv1x1": 0.25, "conv1x1_cl": 1.0},
                         {"conv1x1": 2e-5, "conv1x1_cl": 1e-5}, {"conv1x1": 8.0})
    assert latency.seconds(1e6, 4e6, "conv1x1_cl", (8, 2, 2), m2) == pytest.approx(max(1e6 / 1e10, 4e6 / 1e10) + 1e-5)


def test_the_norms_channels_last_classes_fall_back_to_the_one_plain_class():
    # layer norm and GRN on channels-last tensors have classes of their own, both variants of `norm`:
    # a preset measured before either takes norm's figures for both
    m = latency.machine(1e10, 1e10, {"norm": 1.0, "smooth_act": 1.0}, {"norm": 0.5, "smooth_act": 0.25},
                        {"norm": 3e-5, "smooth_act": 1e-5}, {})
    plain = max(0.0, 4e6 / 5e9) + 3e-5
    for cl in ("norm_cl", "spatial_norm_cl"):
        assert latency.seconds(0, 4e6, cl, (8, 4, 4), m) == pytest.approx(plain)
    assert latency.seconds(0, 4e6, "smooth_act_cl", (8, 4, 4), m) == pytest.approx(4e6 / 2.5e9 + 1e-5)
