"""Ops from other packages: a plugin registers its ops through the
`archdsl.ops` entry-point group, and both the API and `archc` use them."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = '''"""A user's op: y = clamp(x, lo, hi) * scale (learnable scale per channel)."""
import torch
from pydantic import Field
from torch import nn

from archdsl.ops.registry import Attrs, Cost, OpDef, register


class ClampScaleAttrs(Attrs):
    lo: float = -1.0
    hi: float = Field(1.0, gt=-1.0)


class ClampScale(nn.Module):
    def __init__(self, c, lo, hi):
        super().__init__()
        self.lo, self.hi = lo, hi
        self.scale = nn.Parameter(torch.full((1, c, 1, 1), 2.0))

    def forward(self, x):
        return x.clamp(self.lo, self.hi) * self.scale


register(OpDef("clamp_scale", ClampScaleAttrs, lambda a, x: x,
               lambda a, x, y: Cost(params=x[0]),
               lambda a, x, y, ctx: ClampScale(x[0], a.lo, a.hi),
               "clamp_scale(lo, hi): clamp, then a learnable scale per channel"))
'''

SPEC = """network withplugin() {
  input(3, 16, 16)
  stage { conv(8, 3) clamp_scale(-0.5, 0.5) }
  head { global_pool linear(4) }
}
"""


def _wheel(tmp_path: Path, name: str, module_text: str) -> Path:
    """A wheel of one module declaring it in the archdsl.ops entry-point group."""
    dist = f"{name}-0.1.dist-info"
    files = {
        f"{name}.py": module_text,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": f"[archdsl.ops]\n{name} = {name}\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{f},,\n" for f in files) + f"{dist}/RECORD,,\n"
    wheel = tmp_path / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for f, text in files.items():
            z.writestr(f, text)
    return wheel


def _install(tmp_path: Path, name: str, module_text: str) -> dict:
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                        str(_wheel(tmp_path, name, module_text))], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    path = os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path)


def _user_config(tmp_path: Path) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "withplugin.arch").write_text(SPEC)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "withplugin.yaml").write_text("defaults: [base, _self_]\nrecipe: withplugin\n")
    return conf / "withplugin.yaml"


def test_a_plugin_op_is_used_by_archc_build_and_the_api(tmp_path):
    env = _install(tmp_path, "archdsl_demo_ops", PLUGIN)
    cfg = _user_config(tmp_path)
    r = subprocess.run([sys.executable, "-m", "archdsl", "build", str(cfg)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = next((tmp_path / "outputs" / "withplugin").iterdir())
    rep = json.loads((out / "report.json").read_text())
    conv, linear = 8 * 3 * 3 * 3, 8 * 4 + 4
    assert rep["total"]["params"] == conv + 8 + linear  # the plugin's cost rule: one scale per channel
    assert "clamp_scale" in (out / "layers.csv").read_text()
    check = (
        "import torch, archdsl\n"
        f"m = archdsl.load({str(cfg)!r}).eval()\n"
        "op = m.stages[0].blocks[1]\n"
        "x = torch.randn(1, 8, 4, 4)\n"
        "assert type(op).__name__ == 'ClampScale'\n"
        "assert torch.equal(op(x), x.clamp(-0.5, 0.5) * 2.0)\n"
        "assert sum(p.numel() for p in m.parameters()) == archdsl.cost(%r).total.params\n"
        "print('ok')\n" % str(cfg))
    r = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_a_plugins_argument_errors_are_located_in_the_spec(tmp_path):
    env = _install(tmp_path, "archdsl_demo_ops", PLUGIN)
    spec = tmp_path / "bad.arch"
    spec.write_text(SPEC.replace("clamp_scale(-0.5, 0.5)", "clamp_scale(hi: -3)"))
    r = subprocess.run([sys.executable, "-m", "archdsl", "check", str(spec)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert f"{spec}:3:" in r.stderr + r.stdout and "Traceback" not in r.stderr


def test_a_broken_plugin_is_named_not_a_traceback(tmp_path):
    env = _install(tmp_path, "archdsl_broken_ops", "raise RuntimeError('no GPU kernel here')\n")
    spec = tmp_path / "s.arch"
    spec.write_text(SPEC)
    r = subprocess.run([sys.executable, "-m", "archdsl", "check", str(spec)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "archdsl_broken_ops" in out and "no GPU kernel here" in out and "Traceback" not in out
    assert f"{spec}:3:" in out


def test_no_plugin_is_looked_for_when_a_spec_needs_none():
    r = subprocess.run([sys.executable, "-c", "import archdsl, archdsl.ops as o; archdsl.cost('resnet18'); "
                        "print(o._plugins)"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.stdout.strip() == "None", r.stderr
