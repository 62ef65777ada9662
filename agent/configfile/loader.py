"""Load a YAML config file into `AgentConfig`, reporting every problem at once.

Each problem names the YAML line and the dotted key path; an unknown key
suggests the nearest valid one. The file must be a regular file of at most
1 MiB of UTF-8 text. No message ever holds a secret's value. Top-level keys
starting with `x-` are ignored: a place for anchors that `<<:` merges.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.config.errors import ConfigError, ConfigIssue
from agent.config.files import MAX_CONFIG_BYTES, FileProblem, read_regular
from agent.config.secrets import SecretResolver
from agent.config.yaml_source import YamlDocument, load_yaml
from agent.configfile.references import check_references, to_issues
from agent.configfile.root import AgentConfig


@dataclass(frozen=True)
class LoadedConfig:
    config: AgentConfig
    path: Path  # the config file
    base_dir: Path  # relative paths in the config resolve against this

    def resolve(self, p: str) -> Path:
        return (self.base_dir / p).resolve()


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    path = Path(path)
    try:
        raw = read_regular(path, MAX_CONFIG_BYTES)
    except FileProblem as exc:
        raise ConfigError(str(path), [ConfigIssue(None, "", f"cannot read: {exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        msg = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}): save the file as UTF-8"
        raise ConfigError(str(path), [ConfigIssue(line, "", msg)]) from None
    return parse_config(text, str(path), path.resolve().parent, environ)


def parse_config(text: str, filename: str, base_dir: Path,
                 environ: Mapping[str, str] | None = None) -> LoadedConfig:
    resolver = SecretResolver(base_dir, environ)
    try:
        return _parse(text, filename, base_dir, resolver)
    except ConfigError as exc:
        raise ConfigError(filename, _redact(exc.issues, resolver.values)) from None


def _parse(text: str, filename: str, base_dir: Path, resolver: SecretResolver) -> LoadedConfig:
    doc = load_yaml(text, resolver)
    issues = list(doc.issues)
    if doc.data is None and issues:
        raise ConfigError(filename, issues)
    if not isinstance(doc.data, dict):
        raise ConfigError(filename, [*issues, ConfigIssue(1, "", "top level must be a mapping")])
    doc.data = {k: v for k, v in doc.data.items() if not k.startswith("x-")}
    issues += to_issues(check_references(doc.data, base_dir), doc.line_of)
    try:
        config = AgentConfig.model_validate(doc.data)
    except ValidationError as exc:
        reported = {i.path for i in doc.issues}  # a value the walker refused is None: once is enough
        issues += [i for i in (_issue(err, doc) for err in exc.errors()) if i.path not in reported]
        config = None
    if issues or config is None:
        raise ConfigError(filename, _dedupe(issues))
    return LoadedConfig(config, Path(filename), base_dir)


def _redact(issues: list[ConfigIssue], secrets: list[str]) -> list[ConfigIssue]:
    """Every message with each secret value (of 4 characters or more) replaced by ***."""
    values = sorted({v for v in secrets if len(v) >= 4}, key=len, reverse=True)
    out = []
    for issue in issues:
        msg = issue.message
        for v in values:
            msg = msg.replace(v, "***")
        out.append(replace(issue, message=msg))
    return out


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: dict[tuple[int | None, str, str], ConfigIssue] = {}
    for i in issues:
        seen.setdefault((i.line, i.path, i.message), i)
    return list(seen.values())


def _issue(err: Any, doc: YamlDocument) -> ConfigIssue:
    loc = tuple(err["loc"])
    path = _data_path(doc.data, loc)
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {path[-1]!r}" + _suggest(str(path[-1]), _valid_keys(loc[:-1]))
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "union_tag_invalid" or err["type"] == "union_tag_not_found":
        msg = err["msg"]
    if ("input" in err and err["type"] not in ("missing", "extra_forbidden")
            and _is_plain(err["input"]) and not _holds_secret(doc, path)):
        msg += f" (got {err['input']!r})"
    dotted = ".".join(str(p) for p in path)
    return ConfigIssue(doc.line_of(path), dotted, msg)


def _holds_secret(doc: YamlDocument, path: tuple[str | int, ...]) -> bool:
    """True when the value at `path`, or one it is part of, came from a secret reference."""
    return any(tuple(path[:n]) in doc.secret_paths for n in range(len(path) + 1))


def _is_plain(value: Any) -> bool:
    return isinstance(value, int | float | bool) or (isinstance(value, str) and len(value) < 60)


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop the discriminator tags pydantic inserts into `loc`, keeping real YAML keys."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            out.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            out.append(part)
        elif isinstance(node, dict) and part == loc[-1]:
            out.append(part)  # a missing key: name it
        # else: a union tag or a validator location: skip
    return tuple(out)


def _suggest(word: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(word, valid, n=1, cutoff=0.5)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; valid keys: {', '.join(valid)}" if valid else ""


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    tp: Any = AgentConfig
    for part in loc:
        tp = _step(tp, part)
        if tp is None:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _step(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, f in tp.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
        return None
    if origin is dict:
        return typing.get_args(tp)[1]
    if origin in (list, tuple):
        return typing.get_args(tp)[0]
    if origin in (typing.Union, types.UnionType):
        members = [_unwrap(a) for a in typing.get_args(tp)]
        for m in members:
            if isinstance(m, type) and issubclass(m, BaseModel) and "type" in m.model_fields:
                if typing.get_args(m.model_fields["type"].annotation) == (part,):
                    return m
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        return _step(models[0], part) if len(models) == 1 else None
    return None
