"""archc calibrate times each layer with its weights out of cache, as a network runs it."""
import torch

from archdsl.backends.torch import calibrate as calib


def test_layers_are_timed_on_copies_whose_weights_exceed_the_caches(monkeypatch, one_thread):
    made = []
    module = calib._module

    def counted(node, device, dtype, channels_last=False):
        if device != "meta":
            made.append(node.kind)
        return module(node, device, dtype, channels_last)
    monkeypatch.setattr(calib, "_module", counted)
    node = calib._op("linear", dict(out=1024), (1024, 1, 1))  # 1024·1024 + 1024 fp32 weights: 4.2 MB
    assert calib._time_op(node, 1, "cpu", torch.float32, 0.0) > 0
    assert len(made) == 16  # 64 MiB / 4.2 MB, rounded up
    made.clear()
    calib._time_op(node, 1, "cpu", torch.float32, 0.0, cold_weights=False)
    assert len(made) == 1
    made.clear()
    calib._time_op(calib._op("relu", {}, (8, 4, 4)), 1, "cpu", torch.float32, 0.0)  # no weights: one copy
    assert len(made) == 1
