"""archc profile and archc calibrate: per-layer times under the report's layer
names, a calibrated preset the cost model reads back, and its formula."""
import math
import subprocess
import sys

import pytest
import yaml

from archdsl.api import compile, cost
from archdsl.backends.cost import OP_CLASSES, Hardware, op_class
from archdsl.backends.torch import calibrate as calib
from archdsl.backends.torch import profile as prof
from archdsl.compiler import ir


@pytest.fixture
def user_conf(tmp_path, monkeypatch):
    """A user config folder of the test's own (where archc calibrate writes)."""
    monkeypatch.setenv("ARCHDSL_CONFIG_DIR", str(tmp_path / "user"))
    return tmp_path / "user"


def test_profile_names_every_layer_as_the_report_does(one_thread, tmp_path):
    c = compile("shufflenet_v2_x0_5", ["params.res=32"])  # residual-free: chunks, concats, shuffles
    rep = c.report()
    hw = Hardware("h", 1e10, 1e10)
    p = prof.profile(c.module(), c.spec, rep, hw, batch=2, warmup=1, runs=2, layer_runs=2)
    names = [l.name for l in rep.layers]
    assert [l.name for l in p.layers] == names
    timed = {l.name for l in p.layers if l.measured_s is not None}
    # every op and join of the IR has a module whose range was recorded
    assert timed == set(names)
    assert all(l.measured_s >= 0 for l in p.layers)
    assert p.total.median > 0 and p.total.runs == 2
    by = p.by_class()
    assert sum(d["layers"] for d in by.values()) == len(names)
    assert set(by) <= set(OP_CLASSES)
    # predicted at batch 2: weights once, activations twice, by hand for the first conv
    stem = p.layers[0]
    l0 = rep.layers[0]
    assert stem.predicted_s == max(2 * l0.macs / 1e10, (l0.weight_bytes + 2 * l0.act_bytes) / 1e10)
    p.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert "| op class |" in p.to_markdown()


def test_residual_joins_get_their_own_time(one_thread):
    c = compile("resnet18", ["params.res=32"])
    p = prof.profile(c.module(), c.spec, c.report(), Hardware("h", 1e10, 1e10), warmup=1, runs=1, layer_runs=1)
    adds = [l for l in p.layers if l.name.endswith(".add")]
    assert len(adds) == 8 and all(l.measured_s is not None for l in adds)


def test_vector_channels_are_what_a_kernel_vectorizes_along():
    from archdsl.backends.cost import vector_channels
    seen = {}
    for o in [*ir.ops(compile("regnetx_002", ["params.res=64"]).spec),
              *ir.ops(compile("mobilenetv2_100", ["params.res=64"]).spec)]:
        cls = op_class(o.kind, o.attrs, o.in_shape)
        n = vector_channels(o.kind, o.attrs, o.in_shape)
        seen.setdefault(cls, set()).add(n == (o.in_shape[0] if cls in ("depthwise", "conv", "conv1x1")
                                              else o.in_shape[0] // o.attrs.groups if cls == "grouped" else 0))
    # a depthwise conv: all its channels; grouped: one group's (RegNetX's 8 or 16 of up to 368); others: none
    assert seen == {c: {True} for c in ("conv", "conv1x1", "depthwise", "grouped", "elementwise", "gemm", "pool")}
    assert {n for n in (vector_channels(o.kind, o.attrs, o.in_shape) for o in ir.ops(
        compile("regnetx_002", ["params.res=64"]).spec) if op_class(o.kind, o.attrs, o.in_shape) == "grouped")} == {8}


def test_op_classes():
    spec = compile("mobilenetv3_large_100", ["params.res=64"]).spec
    classes = {op_class(o.kind, o.attrs, o.in_shape) for o in ir.ops(spec) if o.kind == "conv"}
    assert classes == {"conv", "conv1x1", "depthwise"}
    spec = compile("resnext50_32x4d", ["params.res=64"]).spec
    assert "grouped" in {op_class(o.kind, o.attrs, o.in_shape) for o in ir.ops(spec)}
    # exp/erf activations, norms over a dimension, windowed pools and weight-standardized convs have their own
    by_kind = {}
    for preset in ("efficientnet_b0", "convnextv2_atto", "densenet121", "nf_resnet50"):
        for o in ir.ops(compile(preset, ["params.res=64"]).spec):
            kind = getattr(o.attrs, "fn", o.kind) if o.kind == "act" else o.kind
            by_kind.setdefault(kind, set()).add(op_class(o.kind, o.attrs, o.in_shape))
    assert by_kind["silu"] == by_kind["gelu"] == {"smooth_act"}
    assert by_kind["layer_norm"] == by_kind["grn"] == {"norm"}
    assert by_kind["max_pool"] == by_kind["avg_pool"] == {"window_pool"}
    assert by_kind["ws_conv"] == {"ws_conv"} and by_kind["bn"] == by_kind["relu"] == {"elementwise"}


def test_calibrated_preset_is_read_back_and_used(user_conf):
    (user_conf / "hardware").mkdir(parents=True)
    eff = {"conv": 0.5, "conv1x1": 0.25, "elementwise": 2.0}
    over = {"conv": 1e-5, "elementwise": 2e-6}
    mem = {"conv": 0.2, "elementwise": 1.5}
    half = {"conv": 30.0}
    curve = {2 ** 20: 4e10, 2 ** 24: 1e10}  # bytes moved: bytes/s
    wbw = {"conv": 3e9}  # bytes/s preparing a conv's weights
    align, off = {"conv": 16}, {"conv": 1.7}  # dense convs on a multiple of 16 input channels run fast
    c = calib.Calibration("mybox", "cpu", 1, "fp32", 1e11, 1e10, over, eff, 0.0, mem_efficiency=mem,
                          half_pixels=half, bw_curve=curve, weight_bw=wbw, channel_align=align, misaligned=off)
    (user_conf / "hardware" / "mybox.yaml").write_text(c.yaml())
    rep = cost("resnet18", ["hardware=mybox", "params.res=64"])
    (hw,) = rep.hardware
    assert (hw.name, hw.efficiency, hw.overhead, hw.mem_efficiency, hw.half_pixels, hw.bw_curve, hw.weight_bw,
            hw.channel_align, hw.misaligned) == ("mybox", eff, over, mem, half, curve, wbw, align, off)
    # resnet18's convs are dense: their vector channels are their input channels; the stem's 3 are off 16
    slowed = [l for l in rep.layers if l.op_class == "conv" and l.in_shape[0] % 16]
    assert [l.name for l in slowed] == ["stem.0"]

    def bw_at(moved):  # the curve, log-interpolated, its ends held
        if moved <= 2 ** 20:
            return 4e10
        if moved >= 2 ** 24:
            return 1e10
        return 4e10 + (1e10 - 4e10) * math.log2(moved / 2 ** 20) / 4

    def by_hand(batch):
        # max(MACs / (peak e) (1 + (p / pixels)^2), bytes / (bw(bytes) m)) + overhead, over the layers; a class
        # with w: its weights out of bytes, weights / w added
        want = 0.0
        for l in rep.layers:
            macs, moved = l.macs * batch, l.weight_bytes + l.act_bytes * batch
            if macs or moved:
                e = eff.get(l.op_class, 1.0)
                acts = moved - l.weight_bytes if l.op_class in wbw else moved
                px = l.out_shape[1] * l.out_shape[2]
                slow = 1 + (half.get(l.op_class, 0) / px) ** 2 if px > 1 else 1  # a 1x1 map: a matrix product
                a = off[l.op_class] if l.op_class in align and l.in_shape[0] % align[l.op_class] else 1.0
                want += max(macs / (1e11 * e) * slow,
                            acts / (bw_at(moved) * mem.get(l.op_class, e))) * a + over.get(l.op_class, 0.0)
                want += l.weight_bytes / wbw[l.op_class] if l.op_class in wbw else 0.0
        return want
    assert rep.roofline(hw) == pytest.approx(by_hand(1), rel=1e-12)
    assert rep.rooflines()["mybox"] == pytest.approx(by_hand(1), rel=1e-12)
    assert sum(l.time(hw, 8) for l in rep.layers) == pytest.approx(by_hand(8), rel=1e-12)
    # the nominal presets stay as they were
    assert "server_cpu" in cost("resnet18").rooflines()


def test_calibrate_measures_and_writes_a_preset(one_thread, user_conf):
    # fewer runs, two kernels a class, no context layers, weights left in cache: quicker; the test
    # process's heap left as it is
    two = {cls: ks[:2] for cls, ks in calib.KERNELS.items()}
    c = calib.calibrate("quick", min_time=0.0, context=False, steady=False, kernels=two, cold_weights=False)
    assert c.peak_macs > 1e8 and c.mem_bw > 1e8 and c.clock == "thread"
    assert (set(c.efficiency) == set(c.overhead) == set(c.mem_efficiency) == set(c.half_pixels) == set(c.weight_bw)
            == set(OP_CLASSES))
    assert all(v > 0 for v in c.efficiency.values()) and all(v >= 0 for v in c.overhead.values())
    assert len(c.bw_curve) == 10 and all(v > 0 for v in c.bw_curve.values())
    data = yaml.safe_load(c.yaml())
    assert set(data["quick"]) == {"peak_macs", "mem_bw", "overhead", "efficiency", "mem_efficiency", "half_pixels",
                                  "bw_curve", "weight_bw", "channel_align", "misaligned", "note"}
    assert set(c.channel_align) == set(c.misaligned) and all(c.misaligned[k] >= 1.1 for k in c.misaligned)
    # every kernel at both batch sizes, with what the fitted formula gives it
    assert len(c.detail) == 2 * 2 * len(OP_CLASSES)
    # the machine's speed in each phase (the overheads', then each class's), against its median
    assert len(c.drift) == len(OP_CLASSES) + 1 and all(0 < s < 10 for s in c.drift)
    assert "its median" in data["quick"]["note"]
    assert all(r["fitted_s"] > 0 and r["measured_s"] > 0 for r in c.detail)


def test_speeds_are_each_phase_against_the_median_reading():
    # readings before the first phase and after each: a phase is the mean of its two, over their median (1.0)
    assert calib.speeds([1.0, 1.2, 1.0, 0.8, 1.0]) == pytest.approx([1.1, 1.1, 0.9, 0.9])
    assert calib.speeds([2.0, 2.0]) == [1.0]


def test_a_phase_timed_slower_is_scaled_back(monkeypatch, one_thread, user_conf):
    # kernels take fixed times, but the machine runs 2x slower while one class is timed, and the
    # probe readings on either side of that phase see it: its kernels' times come back to the
    # fixed ones (the phases next to it share a reading: 1.5x, by the stated rule)
    kernels = {cls: ks[:1] for cls, ks in calib.KERNELS.items()}
    order = list(kernels)
    k = order.index("depthwise")
    state = {"slow": False}

    def fixed(node, batch, *a, **kw):
        return 1e-4 * batch * (1 + len(repr(node.attrs)) / 100)

    def timed(node, batch, *a, **kw):
        return fixed(node, batch) * (2.0 if state["slow"] else 1.0)

    def probe(*a, **kw):
        calls = iter(range(10 ** 6))

        def seconds():  # readings: 2 at the start, 1 after the overheads, then 1 after each class
            i = next(calls)
            state["slow"] = i == k + 2  # the kernels timed after this reading, until the next
            return 2e-3 if i in (k + 2, k + 3) else 1e-3
        return seconds
    monkeypatch.setattr(calib, "_time_op", timed)
    monkeypatch.setattr(calib, "probe", probe)
    c = calib.calibrate("drifty", min_time=0.0, context=False, steady=False, kernels=kernels, cold_weights=False)
    assert len(c.drift) == len(order) + 1
    assert c.drift[k + 1] == pytest.approx(2.0)
    assert c.drift[k] == pytest.approx(1.5) and c.drift[k + 2] == pytest.approx(1.5)
    assert all(s == pytest.approx(1.0) for i, s in enumerate(c.drift) if i not in (k, k + 1, k + 2))
    rows = [r for r in c.detail if r["op_class"] == "depthwise"]
    node = calib._op(*kernels["depthwise"][0])
    assert rows and all(r["measured_s"] == pytest.approx(fixed(node, r["batch"])) for r in rows)


_SHAPES = [(1e6, 1e4, 1e3, 1), (1e7, 1e5, 1e4, 4), (1e8, 1e6, 1e5, 64), (1e9, 1e7, 1e6, 3136), (1e3, 1e7, 0, 3136),
           (1e4, 1e6, 0, 196), (5e8, 2e5, 1e5, 49), (1e7, 1e7, 1e7, 4), (8e7, 1.1e7, 1e7, 4)]


def _by_formula(peak, bw, macs, moved, wb, px, a=1.0):
    # e = 0.5, m = 2, p = 16, w = 4 GB/s, overhead 5 µs; a: the misaligned slowdown
    slow = 1 + (16 / px) ** 2 if px > 1 else 1
    return max(macs / (peak * 0.5) * slow, (moved - wb) / (bw * 2)) * a + wb / 4e9 + 5e-6


def test_fit_recovers_the_formula_by_hand():
    peak, bw = 1e11, 1e10
    pts = [(macs, moved, wb, px, _by_formula(peak, bw, macs, moved, wb, px)) for macs, moved, wb, px in _SHAPES]
    e, m, p, w, o, a = calib.fit(pts, peak, lambda moved: bw)
    assert (e, m, p, w / 1e9, o * 1e6, a) == pytest.approx((0.5, 2.0, 16.0, 4.0, 5.0, 1.0), rel=0.03)


def test_fit_finds_the_channel_alignment_and_its_slowdown():
    # each shape on 48 channels (a multiple of 16) and on 40 (of 8, not 16), 2.5x as long there
    peak, bw = 1e11, 1e10
    pts, lanes = [], []
    for macs, moved, wb, px in _SHAPES:
        for c, a in ((48, 1.0), (40, 2.5)):
            pts.append((macs, moved, wb, px, _by_formula(peak, bw, macs, moved, wb, px, a)))
            lanes.append(c)
    align, (e, m, p, w, o, a) = calib.fit_aligned(pts, lanes, peak, lambda moved: bw)
    assert align == 16
    assert (e, m, p, w / 1e9, o * 1e6, a) == pytest.approx((0.5, 2.0, 16.0, 4.0, 5.0, 2.5), rel=0.03)
    # the same channels, all as fast: no alignment kept
    even = [pt[:4] + (_by_formula(peak, bw, *pt[:4]),) for pt in pts]
    assert calib.fit_aligned(even, lanes, peak, lambda moved: bw)[0] == 0


def test_thread_clock_and_steady_heap():
    from archdsl.backends.torch import timing

    with pytest.raises(ValueError, match="1 thread"):
        timing.check_clock("thread", "cpu", 2)
    with pytest.raises(ValueError, match="device cpu"):
        timing.check_clock("thread", "cuda", 1)
    t = timing.measure(lambda: sum(range(20000)), clock="thread", runs=5, warmup=1)
    assert t.runs == 5 and 0 < t.median and 0 < t.wall
    seen = []
    timing.measure(lambda: None, runs=3, warmup=2, before=seen.append)
    assert seen == [0, 1, 0, 1, 2]  # warm-up calls, then each timed call
    # glibc's heap made steady: in a process of its own (it stays so)
    code = ("from archdsl.backends.torch import timing as t; assert not t.heap_is_steady(); "
            "print(t.steady_heap(), t.heap_is_steady())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1] and out[0] in ("True", "False")


def test_cli_errors_are_exit_2(user_conf, capsys):
    from archdsl.cli import main

    assert main(["profile", "resnet18", "--hardware", "nosuchbox", "--runs", "1"]) == 2
    err = capsys.readouterr().err
    assert "nosuchbox" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:  # argparse's own exit for a bad option value
        main(["cost", "resnet18", "--fit", "16XB"])
    assert e.value.code == 2 and "not a size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["calibrate", "--name", "bad name"])
    assert e.value.code == 2


def test_guidelines_by_hand(program_of):
    from archdsl.backends import guidelines
    from archdsl.backends.cost import report
    from archdsl.compiler.elaborate import elaborate

    prog = program_of("""
network g() {
  input(16, 8, 8)
  stem { conv(16, 3) }
  stage { conv(64, 1) relu }
  stage { conv(64, 3, groups: 4) bn relu }
  head { global_pool }
}
""")
    rep = report(elaborate(prog, {}, None), "g")
    hw = Hardware("h", 1e9, 1e9)
    s = {x.name: x for x in guidelines.sections(rep, hw)}
    # G1: a 16 -> 64 1x1 conv on 8x8: MAC 64·(16+64) + 16·64 = 6144, B = 64·16·64,
    # bound 2·sqrt(64·B) + B/64 = 4096 + 1024
    assert s["stages.0"].g1 == pytest.approx(6144 / 5120)
    # G2: the grouped conv's bytes per MAC: (weights 64·16·9 + in 64·64 + out 64·64)·4 / (64·64·16·9)
    assert s["stages.1"].g2 == pytest.approx((64 * 16 * 9 + 2 * 64 * 64) * 4 / (64 * 64 * 16 * 9))
    # G4: bn and relu are element-wise; the conv is not
    assert 0 < s["stages.1"].g4 < 1 and s["stages.0"].g3 == 1  # each layer of a plain stage is a block
    assert "broken most by **stages.1**" in guidelines.markdown(rep, hw)


def test_rank_by_mnasnet_reward(tmp_path):
    from archdsl.explore import rank

    csv_text = ("job,status,name,macs,time_box_s,acc\n0,ok,a,1e8,0.010,0.75\n1,ok,b,2e8,0.020,0.77\n"
                "2,ok,c,3e8,0.040,0.78\n3,error,d,,,\n")
    (tmp_path / "summary.csv").write_text(csv_text)
    rows = rank.rank(rank.read(tmp_path / "summary.csv"), "time_box_s", "acc", target=0.02)
    # ACC · (LAT / T)^-0.07, by hand
    want = {"a": 0.75 * 0.5 ** -0.07, "b": 0.77, "c": 0.78 * 2 ** -0.07}
    assert [r["name"] for r in rows] == sorted(want, key=lambda k: -want[k])
    assert all(r["objective"] == pytest.approx(want[r["name"]]) for r in rows)
    hard = rank.rank(rank.read(tmp_path / "summary.csv"), "time_box_s", "acc", target=0.02, alpha=0, beta=-1)
    assert hard[0]["name"] == "b"  # 0.77 beats a's 0.75 (no bonus under T) and c's 0.78 / 2
    fast = rank.rank(rank.read(tmp_path / "summary.csv"), "time_box_s", maxima=["macs=2.5e8"])
    assert [r["name"] for r in fast] == ["a", "b"]
    rank.write(fast, tmp_path / "out", "time_box_s", None)
    assert (tmp_path / "out" / "pareto_latency.png").is_file()
