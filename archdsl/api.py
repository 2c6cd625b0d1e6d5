"""The Python API: parse a spec, compile a config to a module or a cost report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archdsl.backends.cost import Report, report
from archdsl.backends.torch.lower import Network, build_module
from archdsl.compiler import ir, passes
from archdsl.compiler.elaborate import ParamError, elaborate
from archdsl.configs.compose import compose
from archdsl.configs.schema import ArchConfig, validate
from archdsl.language.ast import SourceFile
from archdsl.language.errors import ConfigError
from archdsl.language.parser import parse_file
from archdsl.language.program import Program, find_recipe, load_program


@dataclass
class Compiled:
    config: ArchConfig
    program: Program
    spec: ir.Seq
    overrides: tuple[str, ...]

    def report(self) -> Report:
        return report(self.spec, self.config.name, self.config.dtype, self.config.hardware_list(),
                      deployed=self.config.deploy)

    def module(self, device=None) -> Network:
        return build_module(self.spec, self.config.drop_path_rate, device, self.config.uses_channels_last,
                            self.config.uses_prepack)


def parse(path: str | Path) -> SourceFile:
    """Parse one .arch file into its located syntax tree."""
    return parse_file(path)


def check_params(program: Program, cfg: ArchConfig, overrides) -> None:
    """Config keys under params must be parameters of the network."""
    d = program.network(cfg.network)
    names = [p.name for p in d.params]
    for k in cfg.params:
        if k not in names:
            import difflib
            close = difflib.get_close_matches(k, names, 1)
            override = _override_of(f"params.{k}", overrides)
            raise ConfigError(f"network '{d.name}' ({d.loc}) has no parameter '{k}'", key=f"params.{k}",
                              override=override, hint=(f"did you mean '{close[0]}'? " if close else "")
                              + f"parameters: {', '.join(names)}")
    for p in d.params:
        if p.default is None and p.name not in cfg.params:
            raise ConfigError(f"network '{d.name}' needs this parameter", key=f"params.{p.name}")


def _override_of(key: str, overrides) -> str | None:
    """The command-line override that set config `key`, as the user typed it."""
    return next((o for o in overrides if o.split("=")[0].lstrip("+~") == key), None)


def compile_config(cfg: ArchConfig, overrides=(), config_dir: Path | None = None) -> Compiled:
    roots = [config_dir.parent, config_dir] if config_dir else []
    program = load_program(find_recipe(cfg.recipe, roots), roots)
    check_params(program, cfg, overrides)
    try:
        spec = elaborate(program, cfg.params, cfg.network)
    except ParamError as e:
        if not e.from_config:
            raise
        raise ConfigError(e.message + f" (declared at {e.loc})", key=f"params.{e.param}",
                          override=_override_of(f"params.{e.param}", overrides)) from None
    if cfg.deploy:  # the inference graph: BN folded, linear branches fused
        spec = passes.deploy(spec).spec
    return Compiled(cfg, program, spec, tuple(overrides))


def compile(config: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Compiled:
    """Compose, validate and elaborate a config (see `load` and `cost`)."""
    data, name, config_dir = compose(config, overrides)
    cfg = validate(data, name, overrides)
    return compile_config(cfg, overrides, config_dir)


def load(config: str | Path, overrides: tuple[str, ...] | list[str] = (), device=None,
         weights: str | Path | None = None, deploy: bool = False) -> Network:
    """Build the torch module of a config.

    `config` may also be an `archc build` output directory: its resolved
    config is used and its model.pt loaded. `weights`: a saved state dict.
    `deploy=True` (as the override `deploy=true`) builds the deployed graph;
    `weights` are then the deployed module's (`archdsl.deploy` turns a trained
    module into its deployed form).
    """
    if deploy:
        overrides = [*overrides, "deploy=true"]
    net = compile(config, overrides).module(device)
    if weights is None and Path(config).is_dir() and (Path(config) / "model.pt").is_file():
        weights = Path(config) / "model.pt"
    if weights is not None:
        import torch
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net


def cost(config: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Report:
    """The analytic cost report of a config; no module is built."""
    return compile(config, overrides).report()


