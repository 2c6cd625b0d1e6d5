"""What a composed config must look like: pydantic models and their validation."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archdsl.backends.cost import DTYPE_BYTES, Hardware
from archdsl.language.errors import ConfigError


class HardwareConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    peak_macs: float = Field(gt=0, description="MAC/s")
    mem_bw: float = Field(gt=0, description="bytes/s")
    note: str = ""


class ArchConfig(BaseModel):
    """What a composed config must look like (conf/base.yaml documents each key)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    recipe: str
    network: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    dtype: Literal[tuple(DTYPE_BYTES)] = "fp32"  # type: ignore[valid-type]
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
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
    hardware: dict[str, HardwareConfig] = Field(default_factory=dict)

    def hardware_list(self) -> list[Hardware]:
        return [Hardware(k, v.peak_macs, v.mem_bw, v.note) for k, v in self.hardware.items()]


def validate(data: dict, name: str, overrides: list[str] | tuple[str, ...] = ()) -> ArchConfig:
    try:
        cfg = ArchConfig.model_validate(data)
    except ValidationError as ve:
        err = ve.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        override = next((o for o in overrides if o.split("=")[0].lstrip("+~") == key), None)
        raise ConfigError(f"{err['msg'].lower()} (got {err.get('input')!r})", key=key,
                          override=override) from None
    if cfg.name is None:
        cfg.name = name
    return cfg
