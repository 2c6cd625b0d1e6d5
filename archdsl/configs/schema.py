"""What a composed config must look like: pydantic models and their validation."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from archdsl.backends.cost import DTYPE_BYTES, OP_CLASSES, Hardware
from archdsl.language import budget
from archdsl.language.errors import ConfigError


class HardwareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    peak_macs: float = Field(gt=0, description="MAC/s")
    mem_bw: float = Field(gt=0, description="bytes/s")
    note: str = ""
    # a calibrated machine (archc calibrate): per op class, the share of the roofline its kernels reach
    efficiency: dict[Literal[OP_CLASSES], Annotated[float, Field(gt=0)]] = Field(  # type: ignore[valid-type]
        default_factory=dict)
    # seconds per layer: one figure, or one per op class
    overhead: Annotated[float, Field(ge=0)] | dict[Literal[OP_CLASSES], Annotated[float, Field(ge=0)]] = 0.0  # type: ignore[valid-type]
    # per op class: the share of mem_bw its kernels reach, and the output pixels at which they run at half speed
    mem_efficiency: dict[Literal[OP_CLASSES], Annotated[float, Field(gt=0)]] = Field(  # type: ignore[valid-type]
        default_factory=dict)
    half_pixels: dict[Literal[OP_CLASSES], Annotated[float, Field(ge=0)]] = Field(  # type: ignore[valid-type]
        default_factory=dict)
    # copy bandwidth by bytes moved (caches): {bytes: bytes/s}
    bw_curve: dict[Annotated[int, Field(gt=0)], Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    # per op class: bytes/s at which its kernels prepare their weights on every call (absent: no such cost)
    weight_bw: dict[Literal[OP_CLASSES], Annotated[float, Field(gt=0)]] = Field(  # type: ignore[valid-type]
        default_factory=dict)
    # per op class: the channel multiple its fast kernels need, and how many times longer they run off it
    channel_align: dict[Literal[OP_CLASSES], Annotated[int, Field(gt=0)]] = Field(  # type: ignore[valid-type]
        default_factory=dict)
    misaligned: dict[Literal[OP_CLASSES], Annotated[float, Field(gt=0)]] = Field(  # type: ignore[valid-type]
        default_factory=dict)

    @field_validator("efficiency", "overhead", "mem_efficiency", "half_pixels", "weight_bw", "channel_align",
                     "misaligned", mode="before")
    @classmethod
    def _known_classes(cls, v: Any) -> Any:
        # A preset an earlier `archc calibrate` wrote may name classes since split or
        # renamed (max_pool); its figures do not fit the classes now: measure again.
        unknown = [k for k in v if k not in OP_CLASSES] if isinstance(v, dict) else []
        if unknown:
            raise ValueError(f"no op class {', '.join(map(repr, unknown))} (op classes: {', '.join(OP_CLASSES)}); "
                             "a preset written by an earlier `archc calibrate` is measured again by rerunning it")
        return v


class DataConfig(BaseModel):
    """How inputs are prepared for the network (timm's pretrained_cfg); the
    input size is the network's own. Defaults: timm's for ImageNet."""

    model_config = ConfigDict(extra="forbid")
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])
    crop_pct: float = Field(0.875, gt=0, le=1)
    crop_mode: Literal["center", "squash", "border"] = "center"
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bicubic"


class ArchConfig(BaseModel):
    """What a composed config must look like (conf/base.yaml documents each key)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    recipe: str
    network: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, int] = Field(default_factory=dict)  # archdsl.language.budget's, e.g. {layers: 1000000}
    dtype: Literal[tuple(DTYPE_BYTES)] = "fp32"  # type: ignore[valid-type]
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    # Standard options of every network (None: as the recipe has it), as timm's models take them.
    in_chans: int | None = Field(None, gt=0)
    num_classes: int | None = Field(None, ge=0)  # 0: no classifier
    global_pool: Literal["avg", "max", "avgmax", "none"] | None = None
    drop_rate: float | None = Field(None, ge=0, lt=1)  # the classifier's dropout
    features_only: bool = False
    out_indices: list[int] | None = None  # of the feature maps features_only returns; None: all
    reference: str | None = None  # the timm (or torchvision:<name>) model whose weights port in
    data: DataConfig = Field(default_factory=DataConfig)
    deploy: bool = False
    channels_last: bool | None = None  # None: on for deployed builds
    prepack: bool | None = None  # None: on for deployed builds

    @property
    def uses_channels_last(self) -> bool:
        return self.deploy if self.channels_last is None else self.channels_last

    @property
    def uses_prepack(self) -> bool:
        return self.deploy if self.prepack is None else self.prepack
    save_weights: bool = True
    figures: bool = True  # report.html's figures (matplotlib: most of a small build's time)
    hardware: dict[str, HardwareConfig] = Field(default_factory=dict)

    def hardware_list(self) -> list[Hardware]:
        return [Hardware(k, v.peak_macs, v.mem_bw, v.note, dict(v.efficiency),
                         dict(v.overhead) if isinstance(v.overhead, dict) else v.overhead,
                         dict(v.mem_efficiency), dict(v.half_pixels), dict(v.bw_curve), dict(v.weight_bw),
                         dict(v.channel_align), dict(v.misaligned))
                for k, v in self.hardware.items()]


def validate(data: dict, name: str, overrides: list[str] | tuple[str, ...] = ()) -> ArchConfig:
    try:
        cfg = ArchConfig.model_validate(data)
    except ValidationError as ve:
        err = ve.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        override = next((o for o in overrides if o.split("=")[0].lstrip("+~") == key), None)
        raise ConfigError(f"{err['msg'].lower()} (got {err.get('input')!r})", key=key,
                          override=override) from None
    budget.merged(budget.DEFAULT, cfg.limits)  # names and values checked: a ConfigError
    limits = budget.merged(budget.current(), cfg.limits)
    for k, v in cfg.params.items():
        why = _not_a_spec_value(v, limits)
        if why is not None:
            key = f"params.{k}"
            override = next((o for o in overrides if o.split("=")[0].lstrip("+~") == key), None)
            raise ConfigError(why, key=key, override=override)
    if cfg.name is None:
        cfg.name = name
    return cfg


def _not_a_spec_value(value: Any, limits: budget.Limits) -> str | None:
    """Why `value` cannot be a network parameter (a number, bool, string, or a list of
    them, within the limits); None when it can."""
    todo = [(value, 1)]
    while todo:
        v, depth = todo.pop()
        t = type(v)
        if t is list or t is tuple:
            if depth > limits.nesting:
                return f"lists nested more than the limit nesting={limits.nesting} deep"
            todo.extend((x, depth + 1) for x in v)
        elif t not in (int, float, bool, str):
            return (f"a network parameter is a number, bool, string or list of them, not "
                    f"{'null' if v is None else 'a mapping' if t is dict else t.__name__} ({v!r:.60})")
        why = budget.value_too_big(v, limits)
        if why is not None:
            return why
    return None
