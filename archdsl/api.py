"""The Python API: parse a spec, compile a config to a module or a cost report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archdsl.backends import memory
from archdsl.backends.cost import Hardware, Report, report
from archdsl.backends.torch.contract import FeatureError
from archdsl.backends.torch.lower import Network, build_module
from archdsl.compiler import ir, passes
from archdsl.compiler.elaborate import ParamError, elaborate
from archdsl.compiler.passes.head import with_head_options
from archdsl.configs.compose import compose
from archdsl.configs.schema import ArchConfig, validate
from archdsl.language import budget
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

    def report(self, hardware: list[Hardware] | None = None) -> Report:
        """hardware: the config's presets, made already (a design space's points share them)."""
        return report(self.spec, self.config.name, self.config.dtype,
                      self.config.hardware_list() if hardware is None else hardware, deployed=self.config.deploy,
                      channels_last=self.config.uses_channels_last)

    def module(self, device=None) -> Network:
        _check_memory(self, device)  # archdsl.load and archc build both come here
        c = self.config
        data = dict(c.data.model_dump(), architecture=c.name, reference=c.reference)
        try:
            return build_module(self.spec, c.drop_path_rate, device, c.uses_channels_last, c.uses_prepack,
                                data=data, features_only=c.features_only, out_indices=c.out_indices)
        except FeatureError as e:
            key = "out_indices" if c.out_indices is not None else "features_only"
            raise ConfigError(str(e), key=key, override=_override_of(key, self.overrides)) from None


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
    # The config's limits (config key `limits`) hold while its files are read and it is elaborated.
    with budget.active(budget.merged(budget.current(), cfg.limits)):
        return _compile_config(cfg, overrides, config_dir)


def _compile_config(cfg: ArchConfig, overrides=(), config_dir: Path | None = None) -> Compiled:
    roots = [config_dir.parent, config_dir] if config_dir else []
    program = load_program(find_recipe(cfg.recipe, roots), roots)
    check_params(program, cfg, overrides)
    try:
        spec = elaborate(program, cfg.params, cfg.network, cfg.in_chans)
    except ParamError as e:
        if not e.from_config:
            raise
        raise ConfigError(e.message + f" (declared at {e.loc})", key=f"params.{e.param}",
                          override=_override_of(f"params.{e.param}", overrides)) from None
    spec = _with_head_options(spec, cfg, overrides)
    if cfg.deploy:  # the inference graph: BN folded, linear branches fused
        spec = passes.deploy(spec).spec
    return Compiled(cfg, program, spec, tuple(overrides))


def _with_head_options(spec: ir.Seq, cfg: ArchConfig, overrides) -> ir.Seq:
    """The config's num_classes, global_pool and drop_rate applied to the head."""
    try:
        return with_head_options(spec, cfg.num_classes, cfg.global_pool, cfg.drop_rate)
    except ValueError as e:  # ShapeError too: the head cannot take the option
        key = next(k for k in ("global_pool", "num_classes", "drop_rate") if getattr(cfg, k) is not None)
        raise ConfigError(str(e), key=key, override=_override_of(key, overrides)) from None


def compile(config: str | Path, overrides: tuple[str, ...] | list[str] = (), limits: dict | None = None
            ) -> Compiled:
    """Compose, validate and elaborate a config (see `load` and `cost`). `limits`:
    archdsl.language.budget's limits, e.g. {"layers": 10**6}, over the config's `limits`."""
    with budget.active(budget.merged(budget.merged(budget.current(), budget.from_overrides(overrides)), limits)):
        data, name, config_dir = compose(config, overrides)
        cfg = validate(data, name, overrides)
        if limits:
            cfg.limits = {**cfg.limits, **limits}
        return compile_config(cfg, overrides, config_dir)


def load(config: str | Path, overrides: tuple[str, ...] | list[str] = (), device=None,
         weights: str | Path | None = None, deploy: bool = False, limits: dict | None = None,
         **options) -> Network:
    """Build the torch module of a config.

    `config` may also be an `archc build` output directory: its resolved
    config is used and its model.pt loaded. `weights`: a saved state dict.
    `deploy=True` (as the override `deploy=true`) builds the deployed graph;
    `weights` are then the deployed module's (`archdsl.deploy` turns a trained
    module into its deployed form).
    `options`: config keys, as timm's create_model takes them (None: the
    config's): in_chans, num_classes, global_pool, drop_rate, drop_path_rate,
    features_only, out_indices — e.g. `load("resnet18", features_only=True, out_indices=(1, 2))`.
    """
    if deploy:
        overrides = [*overrides, "deploy=true"]
    overrides = [*overrides, *option_overrides(**options)]
    net = compile(config, overrides, limits).module(device)
    if weights is None and Path(config).is_dir() and (Path(config) / "model.pt").is_file():
        weights = Path(config) / "model.pt"
    if weights is not None:
        import torch
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net


OPTIONS = ("in_chans", "num_classes", "global_pool", "drop_rate", "drop_path_rate", "features_only", "out_indices")


def option_overrides(**options) -> list[str]:
    """Config overrides for load's keyword options (None: left as the config has it)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; options: {', '.join(OPTIONS)}")
    out = []
    for k, v in options.items():
        if v is None:
            continue
        if k == "global_pool" and v == "":  # timm's spelling of no pool
            v = "none"
        if isinstance(v, (list, tuple)):
            v = "[" + ",".join(str(int(i)) for i in v) + "]"
        elif isinstance(v, bool):
            v = str(v).lower()
        out.append(f"{k}={v}")
    return out


def cost(config: str | Path, overrides: tuple[str, ...] | list[str] = (), limits: dict | None = None) -> Report:
    """The analytic cost report of a config; no module is built."""
    return compile(config, overrides, limits).report()


def _check_memory(c: Compiled, device) -> None:
    """Refuse, before torch allocates anything, a module larger than the limit
    module_bytes (default: half the free memory of its device)."""
    where = str(device) if device is not None else "cpu"
    if where == "meta":
        return
    limits = budget.merged(budget.current(), c.config.limits)
    # The weights first, from the report (exact integers, nothing lowered): a network of
    # 10**12 weights is refused before its layers are made even on the meta device.
    budget.check_module_memory(4 * c.report().total.params, where, limits, c.config.name)
    budget.check_module_memory(module_bytes(c), where, limits, c.config.name)


def module_bytes(c: Compiled) -> int:
    """Bytes of the module's parameters and buffers, as backends.memory counts them: 4 per
    parameter (fp32; the report's count, which is the module's: the tests check it, and it
    holds those of residual gains, which no layer makes), and every buffer the layers'
    lowerings make (BN statistics, fixed position tables, index tables)."""
    return 4 * c.report().total.params + _buffer_bytes(c.spec)


def _buffer_bytes(spec: ir.Node) -> int:
    """backends.memory.buffer_bytes at fp32; a layer too large for torch to describe is the limit's error."""
    try:
        return memory.buffer_bytes(spec)
    except ValueError as e:
        raise ConfigError(str(e), key="limits.module_bytes") from None
