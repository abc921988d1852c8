"""agentq's broker transport (agentq.broker_transport) against kombu's own, on a real Redis.

When Redis drops while jobs run, Celery's consumer closes the failed connection: kombu drops the
channel's connection pools and detaches the connection's transport, and what runs on the channel
after that (closing it restores the messages it took to their queue) needs a new pool. These
tests put a channel holding a taken message in that state, as kombu does, with the Celery app's
own transport options, and run those steps. kombu's own transport fails with an AttributeError
(and the message is not put back); agentq's does what the steps are for. If a kombu upgrade
fixes its own, the first test says so (then the adapter can go); if it changes what the adapter
overrides, the second fails.
"""

from __future__ import annotations

import inspect

import kombu
from kombu.transport import redis as kombu_redis

from agentq import broker_state, broker_transport
from agentq.celery_app import make_celery, send_job
from agentq.connections import connect
from agentq.settings import Settings


def detached(url: str, transport: str) -> tuple[kombu.Message, kombu.Connection]:
    """A message taken on a channel whose connection was then closed under it."""
    celery = make_celery(Settings(redis_url=url, queue="jobs"))
    send_job(celery, "jobs", "job-1")
    options = celery.conf.broker_transport_options
    connection = kombu.Connection(url, transport=transport, transport_options=options)
    channel = connection.default_channel
    message = kombu.Queue("jobs", channel=channel).get(no_ack=False)
    assert message is not None
    channel._disconnect_pools()  # what closing the channel does first (kombu's Channel.close)
    connection.transport.client = None  # what closing the connection does (its transport's)
    return message, channel


def test_kombus_own_transport_fails_with_an_attribute_error(private_redis_url: str) -> None:
    _message, channel = detached(private_redis_url, "redis")
    errors = channel.qos.restore_unacked()  # what closing the channel runs
    assert [type(error) for error, _message in errors] == [AttributeError]
    assert "hostname" in str(errors[0][0])
    assert broker_state.waiting_ids(connect(private_redis_url), ["jobs"]) == set()  # lost


def test_agentqs_transport_restores(private_redis_url: str) -> None:
    assert kombu_redis.Transport.Channel is kombu_redis.Channel
    assert kombu_redis.SentinelTransport.Channel is kombu_redis.SentinelChannel
    assert hasattr(kombu_redis.Channel, "_connparams")
    assert "client" not in vars(kombu_redis.Transport)  # a plain attribute, set per instance
    client = connect(private_redis_url)
    transport = broker_transport.transport_for(private_redis_url)
    message, _channel = detached(private_redis_url, transport)
    assert broker_state.waiting_ids(client, ["jobs"]) == set()
    message.ack()  # a job that ended after the outage: its message is done with (in memory)
    assert broker_state.waiting_ids(client, ["jobs"]) == set()
    _message, channel = detached(private_redis_url, transport)
    channel.close()  # a job still unclaimed: its message goes back to its queue
    assert broker_state.waiting_ids(client, ["jobs"]) == {"job-1"}


def test_the_celery_app_uses_it() -> None:
    assert make_celery(Settings()).conf.broker_transport == "agentq.broker_transport:Transport"
    sentinel = Settings(redis_url="sentinel://127.0.0.1:26379/0")
    assert make_celery(sentinel).conf.broker_transport.endswith(":SentinelTransport")


def test_a_channel_keeps_one_client_per_pool(private_redis_url: str) -> None:
    assert "asynchronous" in inspect.signature(kombu_redis.Channel._create_client).parameters
    transport = broker_transport.transport_for(private_redis_url)
    with kombu.Connection(private_redis_url, transport=transport) as connection:
        channel = connection.default_channel
        first = channel._create_client()
        assert channel._create_client() is first  # not a new one per publish
        assert first.connection_pool is channel.pool
        assert channel._create_client(asynchronous=True) is not first
        channel._disconnect_pools()  # the connection closed: a new pool, a new client
        second = channel._create_client()
        assert second is not first and second.connection_pool is channel.pool
        assert second.ping()
        with channel.conn_or_acquire() as client:  # what publishing uses
            assert client is second
