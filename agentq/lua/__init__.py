"""agentq's Redis Lua scripts: one ``.lua`` file each, in this package, read once per process.

A script runs atomically in Redis, so it is where a read-check-write on shared state goes (a
status change and the indexes it moves, a dispatch cap, a quota, a lease). Each file starts with
a comment naming the module that runs it, its KEYS and ARGV, what it returns and why it must be
atomic. The files are package data (``pyproject.toml``), so a non-editable install ships them.

``register`` hands a script to redis-py's ``register_script``: a call sends EVALSHA and, on
NOSCRIPT (Redis restarted, ``SCRIPT FLUSH``, a failover to a replica that never saw it), loads
the script and sends it again; a pipeline loads its scripts before it executes. So a script is
read from disk once per process and sent to Redis once per server, not on every call.

A line ``--#include <name>.lua`` stands for that file's text: the status scripts share one Lua
function (``store_job_moved.lua``), and Redis runs each script in its own scope.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, cast, overload

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript, Script

_INCLUDE = re.compile(r"^--#include (\w+)\.lua$", re.MULTILINE)


@cache
def source(name: str) -> str:
    """The text of ``<name>.lua`` with its includes in place; read once per process."""
    text = resources.files(__name__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda line: source(line[1]), text)


@overload
def register(client: aioredis.Redis, name: str) -> AsyncScript: ...


@overload
def register(client: redis.Redis, name: str) -> Script: ...


def register(client: redis.Redis | aioredis.Redis, name: str) -> Script | AsyncScript:
    """Script ``name`` bound to ``client``: call it with ``keys=``, ``args=`` (and ``client=`` a
    pipeline to run it there)."""
    return client.register_script(source(name))


def queue_eval(
    pipe: redis.client.Pipeline, script: Script, keys: list[Any], args: list[Any]
) -> int:
    """Queue ``script`` in ``pipe`` as ``EVAL`` with its text; returns the position of its result.

    How a script joins other commands in one round trip. A redis-py pipeline holding a
    ``register``ed script first asks ``SCRIPT EXISTS`` (a round trip of its own), and a plain
    ``EVALSHA`` that Redis lacks (it restarted, or failed over) fails there, inside a
    transaction after the other writes applied. ``EVAL`` carries the text, so it cannot: the few
    KB cost nothing on the way, and Redis runs the script it has cached under the text's hash.
    """
    position = len(pipe.command_stack)
    pipe.eval(cast(str, script.script), len(keys), *keys, *args)
    return position
