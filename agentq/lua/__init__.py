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
from redis.exceptions import NoScriptError

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


class OneTrip:
    """Commands and scripts sent to Redis in one round trip.

    A redis-py pipeline that holds a script first asks Redis whether it has it (``SCRIPT
    EXISTS``): two round trips. Here scripts go as plain ``EVALSHA`` in a non-transactional
    pipeline; one that Redis does not have (it restarted, or failed over) comes back NOSCRIPT
    and is run again after the others, loaded, as ``register``'s scripts are. Only the scripts
    Redis lacked run late, so a script whose effect a later command relies on must not be
    queued before that command; the writes here are independent of each other.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.pipe = client.pipeline(transaction=False)
        self._scripts: list[tuple[int, Script, list[Any], list[Any]]] = []
        self.reran = False  # whether a script Redis lacked ran after the others

    def script(self, script: Script, keys: list[Any], args: list[Any]) -> int:
        """Queue ``script``; returns the position of its result in ``execute``'s list."""
        position = len(self.pipe.command_stack)
        self.pipe.evalsha(script.sha, len(keys), *keys, *args)
        self._scripts.append((position, script, keys, args))
        return position

    def execute(self) -> list[Any]:
        results: list[Any] = self.pipe.execute(raise_on_error=False)
        for position, script, keys, args in self._scripts:
            if isinstance(results[position], NoScriptError):
                results[position] = script(keys=keys, args=args)
                self.reran = True
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results


def queue_eval(
    pipe: redis.client.Pipeline, script: Script, keys: list[Any], args: list[Any]
) -> int:
    """Queue ``script`` in ``pipe`` as ``EVAL`` with its text; returns the position of its result.

    For a script inside a transaction (``MULTI``): an ``EVALSHA`` that Redis lacks would fail
    there while the transaction's other writes applied, and a redis-py pipeline holding a
    ``register``ed script first asks ``SCRIPT EXISTS``, a round trip of its own. The text (a few
    KB) costs nothing on the way; Redis runs the script it has cached under the text's hash.
    """
    position = len(pipe.command_stack)
    pipe.eval(cast(str, script.script), len(keys), *keys, *args)
    return position
