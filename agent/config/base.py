"""Shared pydantic base for every configuration model: strict keys, described fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """extra="forbid": an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
