"""Every archc config as a timm model: `timm.create_model("archc_<name>", ...)`
and `timm.list_models("archc_*")`, for each bundled preset and each config
in the user's config folder (archdsl.language.resources.user_conf_dir).

The names are `archc_<name>`: timm (1.0.2x on) refuses a model name holding
"/" (it reads as a Hugging Face repo id) and splits one at "." (a pretrained
tag). `register()` adds them to timm's registry; installing archdsl runs it
whenever timm is imported (archdsl_timm_hook.py, loaded by a .pth file).
"""
from __future__ import annotations

import sys
from pathlib import Path

from archdsl.api import compile as compile_config
from archdsl.api import option_overrides
from archdsl.language.resources import conf_dir, user_conf_dir

PREFIX = "archc_"


def configs() -> dict[str, Path]:
    """name -> config file: the bundled presets, then the user's own (which never shadow one)."""
    found: dict[str, Path] = {}
    for folder in (conf_dir(), user_conf_dir()):
        if folder.is_dir():
            for f in sorted(folder.glob("*.yaml")):
                if f.stem != "base" and f.stem.isidentifier():
                    found.setdefault(f.stem, f)
    return found


def create(config: str | Path, pretrained: bool = False, pretrained_cfg=None, pretrained_cfg_overlay=None,
           cache_dir=None, device=None, in_chans=None, num_classes=None, global_pool=None, drop_rate=None,
           drop_path_rate=None, features_only=None, out_indices=None, **unknown):
    """A config's module, built as timm's create_model builds a model: the
    standard options, features_only / out_indices, and pretrained=True
    (the reference's weights from the local cache, archdsl.port.pretrained;
    with another num_classes the body is ported and the classifier is new)."""
    unknown = {k: v for k, v in unknown.items() if v is not None}
    if unknown:
        raise TypeError(f"archc models take no {', '.join(sorted(unknown))} (they take in_chans, num_classes, "
                        "global_pool, drop_rate, drop_path_rate, features_only, out_indices)")
    body = dict(in_chans=in_chans, global_pool=global_pool, drop_rate=drop_rate, drop_path_rate=drop_path_rate)
    head = dict(num_classes=num_classes, features_only=features_only, out_indices=out_indices)
    if not pretrained:
        net = compile_config(config, option_overrides(**body, **head)).module(device)
    else:
        from archdsl.port.pretrained import PretrainedError, port_pretrained

        c = compile_config(config, option_overrides(**body))  # the reference's classifier, to port into
        if not c.config.reference:
            raise PretrainedError(f"config '{c.config.name}' names no reference model to take weights from")
        net = c.module(device)
        port_pretrained(net, c.config.reference, cache_dir)
        if num_classes is not None and num_classes != net.num_classes:
            net.reset_classifier(num_classes)
        if features_only:
            net.make_features_only(out_indices)
    if pretrained_cfg_overlay:
        net.pretrained_cfg = dict(net.pretrained_cfg, **pretrained_cfg_overlay)
    return net


def _entrypoint(name: str, path: Path):
    def entry(pretrained: bool = False, **kwargs):
        return create(path, pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = PREFIX + name
    entry.__module__ = __name__
    entry.__doc__ = f"archc config '{name}' ({path})"
    return entry


def register() -> list[str]:
    """Add every config to timm's registry (again: only those not there yet); returns the names."""
    from timm.models import is_model, register_model

    names = []
    for name, path in configs().items():
        model = PREFIX + name
        if not is_model(model):
            fn = _entrypoint(name, path)
            setattr(sys.modules[__name__], model, fn)
            register_model(fn)
        names.append(model)
    return names
