"""A non-editable install carries the grammar, blocks, recipes and configs."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_is_self_contained(tmp_path):
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheels)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    wheel = next(wheels.glob("archdsl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ["archdsl/_bundled/grammar/archdsl.lark", "archdsl/_bundled/conf/base.yaml",
              "archdsl/_bundled/conf/regnety_8gf.yaml", "archdsl/_bundled/recipes/regnet.arch",
              "archdsl/_bundled/blocks/se.arch",
              "archdsl-timm.pth", "archdsl_timm_hook.py"]:  # `import timm` registers archc's models
        assert f in names, f
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "archc = archdsl.cli:entry" in zipfile.ZipFile(wheel).read(entry_points).decode()
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, PYTHONPATH=str(site))
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = subprocess.run([sys.executable, "-c", "import archdsl, archdsl.language.resources as r; "
                        "print(archdsl.__file__); print(r.root())"], cwd=work, env=env,
                       capture_output=True, text=True)
    assert str(site) in r.stdout.splitlines()[0] and "_bundled" in r.stdout.splitlines()[1]
    r = subprocess.run([sys.executable, "-m", "archdsl", "cost", "conf/regnety_8gf"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "# regnety_8gf" in r.stdout
