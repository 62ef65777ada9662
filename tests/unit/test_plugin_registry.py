"""One registry per plugin kind builds the config unions, the objects and the probes."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from agent.config.plugin import Plugin, Registry
from agent.plugins import CAMERAS, PLCS, SINKS


class _A(BaseModel):
    type: Literal["a"]
    x: int = 0


class _B(BaseModel):
    type: Literal["b"]


def test_union_discriminates_by_type_and_names_the_known_types() -> None:
    reg: Registry[object] = Registry("thing", [Plugin("a", _A, "builtins:dict"),
                                               Plugin("b", _B, "builtins:dict")])
    ta: TypeAdapter[object] = TypeAdapter(reg.union())
    assert isinstance(ta.validate_python({"type": "a", "x": 3}), _A)
    assert isinstance(ta.validate_python({"type": "b"}), _B)
    with pytest.raises(ValidationError, match="'a', 'b'"):
        ta.validate_python({"type": "c"})
    with pytest.raises(KeyError, match=r"no thing plugin of type 'c' \(known: \['a', 'b'\]\)"):
        reg.factory("c")
    assert reg.probe("a") is None


def test_a_plugin_whose_model_disagrees_on_its_type_is_refused() -> None:
    with pytest.raises(ValueError, match=r"thing plugin 'b': _A.type is Literal\['a'\]"):
        Registry("thing", [Plugin("b", _A, "x:y")])
    with pytest.raises(ValueError, match="registered twice"):
        Registry("thing", [Plugin("a", _A, "x:y"), Plugin("a", _A, "x:y")])


def test_the_catalog_resolves_every_factory_and_every_sink_has_a_probe() -> None:
    assert CAMERAS.types() == ["opencv", "folder", "synthetic", "genicam"]
    assert SINKS.types() == ["mqtt", "http", "file", "sparkplug"]
    assert PLCS.types() == ["modbus", "opcua", "mqtt"]
    for reg in (CAMERAS, SINKS, PLCS):
        for t in reg.types():
            assert callable(reg.factory(t))
    for t in SINKS.types():
        assert callable(SINKS.probe(t))
    assert callable(CAMERAS.probe("genicam"))
