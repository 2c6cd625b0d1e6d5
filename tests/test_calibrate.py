"""archc calibrate times each layer with its weights out of cache, as a network runs it."""
import torch

from archdsl.backends.torch import calibrate as calib


def test_layers_are_timed_on_copies_whose_weights_exceed_the_caches(one_thread):
    # the weights each timed call reads, told apart by where they lie in memory
    seen, called = set(), set()

    def record(module, args):
        called.add(id(module))
        w = getattr(module, "weight", None)
        if w is not None:
            seen.add(w.data_ptr())
    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        node = calib._op("linear", dict(out=1024), (1024, 1, 1))  # 1024·1024 + 1024 fp32 weights: 4.2 MB
        assert calib._time_op(node, 1, "cpu", torch.float32, 0.0) > 0
        assert len(seen) == 16  # 64 MiB / 4.2 MB, rounded up: each copy's weights its own
        seen.clear()
        calib._time_op(node, 1, "cpu", torch.float32, 0.0, cold_weights=False)
        assert len(seen) == 1
        called.clear()
        calib._time_op(calib._op("relu", {}, (8, 4, 4)), 1, "cpu", torch.float32, 0.0)  # no weights: one copy
        assert len(called) == 1
    finally:
        hook.remove()
