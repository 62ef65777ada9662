"""A plugin registry per kind (camera, sink, PLC): the config union and the factory.

Each plugin module declares one `Plugin` next to its config model; `agent.plugins` lists
them in one `Registry` per kind. The registry builds the pydantic discriminated union the
root config uses and, at run time, the object for a config (`build`). The factory is named
as "module:function" and imported on first use, so a site without OPC UA never imports
asyncua, and `edge-agent --version` imports no client library at all.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import BaseModel, Field

Model = type[BaseModel]

T = TypeVar("T")


@dataclass(frozen=True)
class Plugin:
    type: str  # the config's `type:` value
    config: Model  # its model; its `type` field is Literal[type]
    factory: str  # "package.module:function", called as function(name, cfg, *context)


class Registry(Generic[T]):
    """The plugins of one kind, by `type`."""

    def __init__(self, kind: str, plugins: Sequence[Plugin]) -> None:
        self.kind = kind
        self._plugins: dict[str, Plugin] = {}
        for p in plugins:
            if p.type in self._plugins:
                raise ValueError(f"{kind} plugin type {p.type!r} registered twice")
            declared = typing.get_args(p.config.model_fields["type"].annotation)
            if declared != (p.type,):
                raise ValueError(f"{kind} plugin {p.type!r}: {p.config.__name__}.type is "
                                 f"Literal{list(declared)}, not Literal[{p.type!r}]")
            self._plugins[p.type] = p

    def types(self) -> list[str]:
        return list(self._plugins)

    def union(self) -> Any:
        """The discriminated union of every registered config model (pydantic field type)."""
        configs = tuple(p.config for p in self._plugins.values())
        return Annotated[Union[configs], Field(discriminator="type")]  # noqa: UP007

    def factory(self, type_: str) -> Callable[..., T]:
        plugin = self._plugins.get(type_)
        if plugin is None:
            raise KeyError(f"no {self.kind} plugin of type {type_!r} (known: {self.types()})")
        module, _, attr = plugin.factory.partition(":")
        fn: Callable[..., T] = getattr(importlib.import_module(module), attr)
        return fn

    def build(self, name: str, cfg: Any, *context: Any) -> T:
        """The object for one config section (not started)."""
        return self.factory(cfg.type)(name, cfg, *context)
