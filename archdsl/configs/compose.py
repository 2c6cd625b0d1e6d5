"""Hydra configs: locating them and composing them (quickly where Hydra's
semantics allow it, through Hydra's compose API otherwise)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from archdsl.configs.quick_compose import quick_compose, yaml_error
from archdsl.language import budget
from archdsl.language.ast import Loc
from archdsl.language.errors import SOURCES, ArchError, ConfigError
from archdsl.language.resources import conf_dir, user_conf_dir


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
    The same holds for `limits.x=v` (archdsl.language.budget checks the names).
    """
    return ["++" + o if o.startswith(("params.", "limits.")) and "=" in o else o for o in overrides]


def as_typed(overrides, typed=()) -> list[str]:
    """Hydra's overrides of a job as the user wrote them on the command line `typed`:
    without the `++` open_params added, and, unless the key was swept, verbatim
    (a multirun's sweeper rewrites `save_weights=false` as `save_weights=False`)."""
    kept = {t.split("=")[0] for t in typed if t.startswith("++params.")}
    verbatim = {t.split("=")[0].lstrip("+~"): t for t in typed
                if "=" in t and not any(c in t.split("=", 1)[1] for c in ",(")}  # no sweep syntax
    out = []
    for o in overrides:
        key = o.split("=")[0]
        if key.lstrip("+~") in verbatim:
            out.append(verbatim[key.lstrip("+~")])
        else:
            out.append(o[2:] if o.startswith("++params.") and key not in kept else o)
    return out


def search_path_override(config_dir: Path) -> list[str]:
    """Let user configs say `defaults: [base]` and reach the bundled groups,
    and every config reach the user's folder (a calibrated hardware preset)."""
    paths = [] if config_dir.resolve() == conf_dir() else [f"file://{conf_dir()}"]
    paths += [f"file://{d}" for d in user_search_dirs()]
    return [f"hydra.searchpath=[{','.join(paths)}]"] if paths else []


def user_search_dirs() -> list[str]:
    """The user's config folder, when there is one (resources.user_conf_dir)."""
    d = user_conf_dir()
    return [str(d)] if d.is_dir() else []


def compose(config: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> tuple[dict, str, Path]:
    """Compose a config as Hydra does; returns (plain dict, name, dir)."""
    check_overrides(overrides)
    config_dir, name = locate(config)
    overrides = open_params(list(overrides))
    data = quick_compose(config_dir, name, overrides, conf_dir(), user_search_dirs())
    if data is None:
        data = hydra_compose(config_dir, name, overrides)
    return data, name, config_dir


def check_overrides(overrides) -> None:
    """Refuse overrides Hydra would take minutes (or Python's int() a ValueError) to read."""
    limits = budget.current()
    for o in overrides:
        o = str(o)
        try:
            o.encode("utf-8")
        except UnicodeEncodeError:  # bytes of another encoding on the command line
            raise ConfigError("an override is UTF-8 text", override=ascii(o)) from None
        if len(o) > limits.override_bytes:
            raise ConfigError(f"an override of {len(o):,} characters is over the limit override_bytes="
                              f"{limits.override_bytes:,}", override=o[:60] + "…",
                              hint=limits.hint("override_bytes") + "; or put the value in a config file")
        longest = max((len(run) for run in _DIGIT_RUNS.findall(o)), default=0)
        if longest > limits.int_bits // 3 + 2:
            raise ConfigError(f"a number of {longest:,} digits is over the limit int_bits={limits.int_bits}",
                              override=o[:60] + ("…" if len(o) > 60 else ""), hint=limits.hint("int_bits"))


def preflight(config: str, args: list[str]) -> None:
    """Compose `archc build`'s config (its sweep's values left out) as `archc cost` would,
    so that a config error is reported, located, before Hydra runs (Hydra prints a
    traceback for some). Raises ArchError."""
    overrides = [a for a in args if "=" in a and not a.startswith("-")
                 and not a.lstrip("+~").startswith(("hydra.", "hydra/"))]
    check_overrides(overrides)
    if overrides:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import HydraException

        try:
            parsed = OverridesParser.create().parse_overrides(overrides)
        except HydraException:
            return  # Hydra words its own grammar's errors
        overrides = [o.input_line for o in parsed if not o.is_sweep_override()]
    compose(config, overrides)


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
        guilty = _guilty(e, overrides)
        # Hydra names the config file; the culprit is its defaults list when it cannot load an entry.
        key = "defaults" if guilty is None and "Could not load" in str(e) else None
        raise ConfigError(_first_line(e), key=key, override=guilty) from None
    except yaml.YAMLError as e:  # a config file that is not valid YAML (or repeats a key)
        raise yaml_error(e) from None
    except (ValueError, TypeError, OSError, RecursionError) as e:  # Hydra's words for a bad
        # defaults list, a group set to a number, a file that is not a mapping, ...
        raise ConfigError(_first_line(e) or type(e).__name__, override=_guilty(e, overrides)) from None
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:  # an interpolation that does not resolve: ${foo}, ${oc.env:X}
        raise ConfigError(_first_line(e).split(" full_key:")[0].strip(), key=getattr(e, "full_key", None),
                          override=_guilty(e, overrides)) from None
    except RecursionError:
        raise ConfigError("the config nests too deeply") from None


_DIGIT_RUNS = re.compile(r"\d+")


def _first_line(e: Exception) -> str:
    return " ".join(str(e).split("\n")[:2]).strip()


def _guilty(e: Exception, overrides: list[str]) -> str | None:
    text = str(e)
    guilty = next((o for o in overrides if o.split("=")[0].lstrip("+~") in text), None)
    return guilty[2:] if guilty and guilty.startswith("++params.") else guilty
