"""agentq reads where a job's message is from kombu's Redis storage (agentq.broker_state): these
tests put real messages there with Celery and take them with the Celery app's own consumer
connection, so a kombu upgrade that changes the storage fails here, loudly, not as jobs resent
twice or never. A taken message is held only in the consumer's memory (no acknowledgement
emulation): one lost with its consumer is found and sent again by the worker's housekeeping."""

from __future__ import annotations

import kombu

from agentq import broker_state
from agentq.celery_app import make_celery, send_job
from agentq.connections import connect
from agentq.settings import Settings
from producer.client import Client
from tests.conftest import TOKEN_A
from worker.maintenance import Maintenance


def test_a_sent_message_is_waiting_then_taken_and_in_no_key(private_redis_url: str) -> None:
    client = connect(private_redis_url)
    celery = make_celery(Settings(redis_url=private_redis_url, queue="jobs"))
    send_job(celery, "jobs", "job-1")
    send_job(celery, "other", "job-2")
    assert broker_state.waiting_ids(client, ["jobs"]) == {"job-1"}
    assert broker_state.waiting_ids(client, ["jobs", "other", "empty"]) == {"job-1", "job-2"}
    keys = set(client.keys("*"))
    with celery.connection_for_read() as connection:
        queue = kombu.Queue("jobs", channel=connection.default_channel)
        message = queue.get(no_ack=False)  # taken by a consumer, not acknowledged
        assert message is not None
        assert message.headers["id"] == "job-1"
        assert broker_state.waiting_ids(client, ["jobs"]) == set()
        # kombu's unacked hash and index (ack emulation) are not written: the job store is
        # where a taken message's job is recorded, by its claim.
        assert set(client.keys("*")) <= keys
        assert not client.exists("unacked", "unacked_index")
        message.ack()
    assert broker_state.waiting_ids(client, ["jobs"]) == set()


def test_what_is_not_a_message_is_skipped(private_redis_url: str) -> None:
    client = connect(private_redis_url)
    client.rpush("jobs", "not json", '{"headers": "odd"}', '{"headers": {"id": 7}}')
    assert broker_state.waiting_ids(client, ["jobs"]) == set()


def test_a_message_lost_with_its_consumer_is_sent_again(
    private_redis_url: str, secret_key: str
) -> None:
    settings = Settings(redis_url=private_redis_url, secret_key=secret_key, queue="jobs")
    producer = Client(settings)
    # A live worker with one slot: the submit sends the job's message at once.
    producer.dispatcher.register_worker("w@host", 1)
    producer.redis.set("agentq:worker:w@host", "1")
    job_id = producer.submit("Which devices are in atl1?", TOKEN_A)
    celery = producer.celery
    maintenance = Maintenance(producer.store, producer.dispatcher, celery, settings, "w@host")
    assert broker_state.waiting_ids(producer.redis, ["jobs"]) == {job_id}
    assert maintenance.resend_lost_messages(0) == 0  # waiting in its queue: not lost

    # A consumer takes the message and dies before it claims the job (closing its channel with
    # the message unacknowledged would have put it back).
    with celery.connection_for_read() as connection:
        message = kombu.Queue("jobs", channel=connection.default_channel).get(no_ack=False)
        assert message is not None and message.headers["id"] == job_id
        message.ack()  # forgotten: what the dead consumer held is gone with it
    assert broker_state.waiting_ids(producer.redis, ["jobs"]) == set()
    assert maintenance.resend_lost_messages(30) == 0  # sent moments ago: not yet taken as lost
    assert maintenance.resend_lost_messages(0) == 1
    assert broker_state.waiting_ids(producer.redis, ["jobs"]) == {job_id}
    assert maintenance.resend_lost_messages(0) == 0  # the new one waits in the queue

    # Claimed (its message reached a worker after all): nothing to resend any more.
    assert producer.store.claim(job_id, "w@host", poison_after=3) == "claimed"
    producer.redis.delete("jobs")
    assert maintenance.resend_lost_messages(0) == 0
