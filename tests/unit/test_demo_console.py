"""`edge-agent demo` tells the web console's address and a token to log in with."""

from __future__ import annotations

import dataclasses

from agent.commands.demo import with_console_token
from agent.configfile import load_config
from agent.data import demo_config


def test_demo_makes_a_token_and_prints_the_console_url() -> None:
    loaded = load_config(demo_config())
    assert loaded.config.health.token is None  # the bundled demo has none
    new, line = with_console_token(loaded)
    token = new.config.health.token
    assert token and len(token) >= 16
    assert line == f"Web console: http://127.0.0.1:9310/console/  (token: {token})"
    again, _ = with_console_token(loaded)
    assert again.config.health.token != token  # one per run


def test_a_configured_token_is_kept_and_a_disabled_console_says_nothing() -> None:
    loaded = load_config(demo_config())
    cfg = loaded.config
    mine = dataclasses.replace(loaded, config=cfg.model_copy(update={
        "health": cfg.health.model_copy(update={"token": "mine", "listen": "0.0.0.0:9999"})}))
    kept, line = with_console_token(mine)
    assert kept.config.health.token == "mine"
    assert line == "Web console: http://127.0.0.1:9999/console/  (token: mine)"
    off = dataclasses.replace(loaded, config=cfg.model_copy(update={
        "console": cfg.console.model_copy(update={"enabled": False})}))
    assert with_console_token(off) == (off, "")
