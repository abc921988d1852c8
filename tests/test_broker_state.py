"""agentq reads where a job's message is from kombu's Redis storage (agentq.broker_state): these
tests put real messages there with Celery and take them with a real kombu consumer, so a kombu
upgrade that changes the storage fails here, loudly, not as jobs resent twice or never."""

from __future__ import annotations

import time

import kombu
from kombu.transport import redis as kombu_redis

from agentq import broker_state
from agentq.celery_app import make_celery, send_job
from agentq.connections import connect
from agentq.settings import Settings


def test_kombu_keeps_taken_messages_where_agentq_looks() -> None:
    assert kombu_redis.Channel.unacked_key == broker_state.UNACKED_KEY
    assert kombu_redis.Channel.unacked_index_key == broker_state.UNACKED_INDEX_KEY


def test_a_sent_message_is_waiting_then_taken_then_gone(private_redis_url: str) -> None:
    client = connect(private_redis_url)
    celery = make_celery(Settings(redis_url=private_redis_url, queue="jobs"))
    send_job(celery, "jobs", "job-1")
    send_job(celery, "other", "job-2")
    assert broker_state.waiting_ids(client, ["jobs"]) == {"job-1"}
    assert broker_state.waiting_ids(client, ["jobs", "other", "empty"]) == {"job-1", "job-2"}
    assert broker_state.taken_ids(client) == {}
    with celery.connection_for_read() as connection:
        queue = kombu.Queue("jobs", channel=connection.default_channel)
        before = time.time()
        message = queue.get(no_ack=False)  # taken by a consumer, not acknowledged
        assert message is not None
        assert broker_state.waiting_ids(client, ["jobs"]) == set()
        taken = broker_state.taken_ids(client)
        assert set(taken) == {"job-1"} and before - 1 <= taken["job-1"] <= time.time() + 1
        message.ack()
    assert broker_state.taken_ids(client) == {}


def test_what_is_not_a_message_is_skipped(private_redis_url: str) -> None:
    client = connect(private_redis_url)
    client.rpush("jobs", "not json", '{"headers": "odd"}', '{"headers": {"id": 7}}')
    client.hset("unacked", "tag", "[]")
    assert broker_state.waiting_ids(client, ["jobs"]) == set()
    assert broker_state.taken_ids(client) == {}
