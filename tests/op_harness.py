"""Building one op's test network and checking it against the cost report:
the output against the IR's shape, params against the module's, MACs against
FlopCounterMode on the CPU and on the meta device (tests/test_ops_*.py)."""
import math

import pytest
import torch
from reference import n_params
from torch.utils.flop_counter import FlopCounterMode

from archdsl.backends.cost import report
from archdsl.backends.torch.lower import build_module
from archdsl.compiler.elaborate import elaborate

SHAPE = (4, 9, 11)  # odd, unequal sides: a swapped axis shows


def spec_text(body: str, shape=SHAPE, head: str = "", blocks: str = "") -> str:
    c, h, w = shape
    return (f"{blocks}network n() {{\n  input({c}, {h}, {w})\n  stage {{\n    {body}\n  }}\n"
            f"  head {{ {head} }}\n}}\n")


def counted(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(output, MACs per sample as FlopCounterMode counts them)."""
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        y = net(x)
    return y, fc.get_total_flops() // 2 // x.shape[0]


@pytest.fixture
def built(program_of):
    """built(body, shape): (IR, eval module, first op's module, input, output),
    checked against the IR's shape and the report's params and MACs, these on
    the CPU and on the meta device."""
    def build(body: str, shape=SHAPE, head: str = "", blocks: str = "", seed: int = 0):
        spec = elaborate(program_of(spec_text(body, shape, head, blocks)), {})
        torch.manual_seed(seed)
        net = build_module(spec).eval()
        with torch.no_grad():  # affine tensors and biases away from their 1 / 0 start
            for name, p in net.named_parameters():
                if p.ndim == 1:
                    p.uniform_(0.5, 1.5) if "bias" not in name else p.uniform_(-0.5, 0.5)
                elif "attention_biases" in name:
                    p.uniform_(-1.0, 1.0)
        x = torch.randn(2, *shape)
        y, macs = counted(net.forward_features if not head else net, x)
        if head:  # the network flattens a 1x1 output
            assert y.shape[1:].numel() == math.prod(spec.out_shape)
        else:
            assert tuple(y.shape[1:]) == spec.out_shape
        r = report(spec, "n").total
        assert r.params == n_params(net)
        assert r.macs == macs
        meta = build_module(spec, device="meta").eval()
        y_meta, meta_macs = counted(meta, torch.empty(2, *shape, device="meta"))
        assert meta_macs == r.macs and y_meta.shape[1:].numel() == math.prod(spec.out_shape)
        first = net.stages[0].blocks.get_submodule("0")  # a chain or a graph
        return spec, net, first, x, y
    return build
