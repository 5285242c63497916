"""What every part of a recipe's model shares: strict frozen models and channel names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

CHANNEL = r"^[A-Za-z][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*$"

ChannelName = Annotated[str, Field(pattern=CHANNEL)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
