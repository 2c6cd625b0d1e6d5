"""Hydra configs: locating them and composing them (quickly where Hydra's
semantics allow it, through Hydra's compose API otherwise)."""
from __future__ import annotations

import os
from pathlib import Path

from archdsl.configs.quick_compose import quick_compose
from archdsl.language.ast import Loc
from archdsl.language.errors import SOURCES, ArchError, ConfigError
from archdsl.language.resources import conf_dir


def locate(config: str | Path) -> tuple[Path, str]:
    """Map `conf/x`, `conf/x.yaml`, an absolute path or a bundled preset name to (dir, name)."""
    # os.path, not pathlib: this runs on every load, and a bare preset name misses twice.
    s = str(Path(config))  # normalized: conf/x/ is conf/x
    if os.path.isfile(os.path.join(s, "config.yaml")):  # an `archc build` output directory
        return Path(os.path.realpath(s)), "config"
    candidates = [s, s + ".yaml"] if not s.endswith(".yaml") else [s]
    for c in candidates:
        if os.path.isfile(c):
            return Path(os.path.realpath(c)).parent, Path(c).stem
    p = Path(s)
    bundled = os.path.join(conf_dir(), p.stem + ".yaml")
    if len(p.parts) <= 2 and os.path.isfile(bundled):  # a bare name, or conf/<name> outside a checkout
        return conf_dir(), p.stem
    presets = sorted(x.stem for x in conf_dir().glob("*.yaml") if x.stem != "base")
    import difflib
    close = difflib.get_close_matches(p.stem, presets, 3)
    raise ConfigError(f"no config '{config}' (not a file, and not a bundled preset)",
                      hint=(f"did you mean {', '.join(close)}? " if close else "")
                      + "`archc presets` lists the bundled ones")


def open_params(overrides) -> list[str]:
    """`params.x=v` sets a network parameter whether or not the preset lists it.

    Hydra would ask for `+params.x=v` when the preset leaves x at the recipe's
    default; archc checks parameter names against the network itself instead.
    """
    return ["++" + o if o.startswith("params.") and "=" in o else o for o in overrides]


def search_path_override(config_dir: Path) -> list[str]:
    """Let user configs say `defaults: [base]` and reach the bundled groups."""
    if config_dir.resolve() == conf_dir():
        return []
    return [f"hydra.searchpath=[file://{conf_dir()}]"]


def compose(config: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> tuple[dict, str, Path]:
    """Compose a config as Hydra does; returns (plain dict, name, dir)."""
    config_dir, name = locate(config)
    overrides = open_params(list(overrides))
    data = quick_compose(config_dir, name, overrides, conf_dir())
    if data is None:
        data = hydra_compose(config_dir, name, overrides)
    return data, name, config_dir


def hydra_compose(config_dir: Path, name: str, overrides: list[str]) -> dict:
    """Hydra's compose API (the reference semantics; also words the errors)."""
    import yaml
    from hydra import compose as compose_api
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose_api(config_name=name, overrides=overrides + search_path_override(config_dir))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_first_line(e), override=_guilty(e, overrides)) from None
    except yaml.YAMLError as e:  # a config file that is not valid YAML (or repeats a key)
        raise _yaml_error(e) from None
    return OmegaConf.to_container(cfg, resolve=True)


def _yaml_error(e: Exception) -> ArchError:
    """PyYAML's error located at file:line:col (its marks count from 0), the line quoted."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if mark is None or not mark.name or mark.name.startswith("<"):
        return ConfigError(f"invalid YAML: {problem}")
    try:
        SOURCES[mark.name] = Path(mark.name).read_text()
    except OSError:
        pass
    return ArchError(f"invalid YAML: {problem}", Loc(mark.name, mark.line + 1, mark.column + 1))


def _first_line(e: Exception) -> str:
    return " ".join(str(e).split("\n")[:2]).strip()


def _guilty(e: Exception, overrides: list[str]) -> str | None:
    text = str(e)
    guilty = next((o for o in overrides if o.split("=")[0].lstrip("+~") in text), None)
    return guilty[2:] if guilty and guilty.startswith("++params.") else guilty
