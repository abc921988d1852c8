"""Webhook hardening: malformed URLs refused cleanly, addresses checked again at delivery and the
connection pinned to the checked one (DNS rebinding), https only by default, a whole-attempt
deadline and no buffered reply, deliveries off the job slots and durable, one secret per tenant.

Names resolve through a table here (``agentq.webhooks.targets`` takes its resolver as a
parameter); every connection is real HTTP(S) over loopback.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from agentq.errors import BadRequest
from agentq.jobs import JobStatus
from agentq.store import NOTIFY_KEY
from agentq.webhooks.delivery import DeliveryResult, deliver
from agentq.webhooks.queue import DeliveryQueue
from agentq.webhooks.signing import generate_webhook_secret
from agentq.webhooks.targets import Address, Resolver, check_webhook_url, is_public
from doubles.processes import Service, wait_until
from tests.conftest import (
    TOKEN_A,
    TOKEN_B,
    Receiver,
    Stack,
    Workers,
    own_stack,
    run_cli,
    shared_stack,
    start_api,
)
from tests.test_cli_input import assert_one_line_error

PUBLIC = "93.184.216.34"


def table(names: dict[str, list[str]]) -> Resolver:
    """A resolver double: answers from ``names`` as it is at the time of each lookup."""

    def resolve(host: str, port: int) -> list[Address]:
        if host not in names:
            raise BadRequest(f"the webhook URL's host {host} does not resolve")
        return [ipaddress.ip_address(a) for a in names[host]]

    return resolve


def post(url: str, **kwargs: Any) -> DeliveryResult:
    options: dict[str, Any] = {"allow_private": True, "allow_http": True, "deadline": 5.0}
    options.update(kwargs)
    secret = generate_webhook_secret()
    return asyncio.run(deliver(url, {"type": "job.ended"}, secret, "job_1", **options))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that accepts nothing by itself: any connection waits in its backlog."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://h:99999/hook",
        "http://h:0/hook",
        "http://h:abc/hook",
        "http://[::1",
        "http://xn--a.com/hook",
        "http://" + "a" * 64 + ".com/hook",
        "http:///hook",
        "http://:80/hook",
        "http://exa mple.com/hook",
        "http://-bad.example/hook",
        "http://fe80::1%25eth0/hook",
    ],
)
def test_malformed_webhook_urls_are_a_bad_request(url: str) -> None:
    with pytest.raises(BadRequest):
        check_webhook_url(url, allow_private=True, allow_http=True)


def test_http_needs_the_setting_at_submit_and_at_delivery(listener: socket.socket) -> None:
    with pytest.raises(BadRequest, match=r"must be https://.*AGENTQ_WEBHOOK_ALLOW_HTTP"):
        check_webhook_url("http://example.com/hook", allow_private=True)
    assert check_webhook_url("https://example.com/hook", allow_private=True)
    port = listener.getsockname()[1]
    result = post(f"http://127.0.0.1:{port}/hook", allow_http=False)
    assert not result.delivered and not result.retryable and "https" in (result.error or "")
    assert_no_connection(listener)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",  # noqa: S104
        "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
        "2002:7f00:1::1", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
        "::7f00:1", "::a9fe:a9fe", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    ],
)  # fmt: skip
def test_non_global_addresses_are_refused_however_wrapped(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(BadRequest, match="private or local address"):
        check_webhook_url(
            "https://hook.test/x", allow_private=False, resolver=table({"hook.test": [address]})
        )


@pytest.mark.parametrize(
    "address", [PUBLIC, "2606:4700:4700::1111", "64:ff9b::5db8:d822", "2002:5db8:d822::1"]
)
def test_global_addresses_are_accepted(address: str) -> None:
    resolver = table({"hook.test": [address]})
    assert check_webhook_url("https://hook.test/x", allow_private=False, resolver=resolver)


# --- Connect-time checks and pinning -----------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=0)
    yield server
    server.server.shutdown()


def test_delivery_connects_to_the_resolved_address_and_keeps_the_name(
    receiver: Receiver,
) -> None:
    port = receiver.server.server_address[1]
    result = post(f"http://hook.test:{port}/hook?x=1", resolver=table({"hook.test": ["127.0.0.1"]}))
    assert result.delivered, result
    headers, _ = receiver.requests[0]
    assert [v for k, v in headers.items() if k.lower() == "host"] == [f"hook.test:{port}"]


@pytest.mark.parametrize("rebound", ["127.0.0.1", "::ffff:127.0.0.1", "2002:7f00:1::1"])
def test_a_name_rebound_to_a_private_address_is_refused_at_delivery(
    listener: socket.socket, rebound: str
) -> None:
    port = listener.getsockname()[1]
    url = f"http://hook.test:{port}/hook"
    dns = {"hook.test": [PUBLIC]}
    assert check_webhook_url(url, allow_private=False, allow_http=True, resolver=table(dns))
    dns["hook.test"] = [rebound]  # the attacker's DNS answers differently at delivery
    result = post(url, allow_private=False, resolver=table(dns))
    assert not result.delivered and not result.retryable
    assert "private or local address" in (result.error or "")
    assert_no_connection(listener)


def test_allow_private_is_checked_again_at_delivery(listener: socket.socket) -> None:
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    assert check_webhook_url(url, allow_private=True, allow_http=True)  # accepted back then
    result = post(url, allow_private=False)  # the deployment has since turned it off
    assert not result.delivered and "private or local address" in (result.error or "")
    assert_no_connection(listener)


def make_tls(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context with a certificate for ``name``, client context trusting only its CA)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: Any, issuer: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentq test CA")])
    ca = certificate("agentq test CA", ca_key, ca_name, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(name, key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (tmp / "leaf.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "leaf.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


def test_https_is_pinned_to_the_address_and_verified_for_the_name(
    receiver: Receiver, tmp_path: Path
) -> None:
    server_tls, client_tls = make_tls(tmp_path, "hook.test")
    receiver.server.socket = server_tls.wrap_socket(receiver.server.socket, server_side=True)
    port = receiver.server.server_address[1]
    dns = table({"hook.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    result = post(f"https://hook.test:{port}/hook", resolver=dns, verify_tls=client_tls)
    assert result.delivered, result
    assert {k.lower(): v for k, v in receiver.requests[0][0].items()}["host"] == f"hook.test:{port}"
    # The same address under a name the certificate is not for: the TLS check refuses it.
    wrong = post(f"https://other.test:{port}/hook", resolver=dns, verify_tls=client_tls)
    assert not wrong.delivered and wrong.error == "ConnectError"
    assert len(receiver.requests) == 1


# --- Resource limits -------------------------------------------------------------------------


class RawReceiver:
    """Reads a request, then answers with ``head`` and calls ``then(connection)``."""

    def __init__(self, head: bytes, then: Any) -> None:
        self.sent = 0
        self.done = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]

        def serve() -> None:
            connection, _ = self.server.accept()
            try:
                connection.recv(65536)
                connection.sendall(head)
                then(self, connection)
            except OSError:
                pass
            finally:
                connection.close()
                self.done.set()

        threading.Thread(target=serve, daemon=True).start()


def test_a_dripping_receiver_cannot_hold_a_delivery_past_its_deadline() -> None:
    stop = threading.Event()

    def drip(receiver: RawReceiver, connection: socket.socket) -> None:
        for byte in b"X-Slow: " + b"a" * 1000:
            if stop.wait(0.05):
                return
            connection.sendall(bytes([byte]))

    receiver = RawReceiver(b"HTTP/1.1 200 OK\r\n", drip)
    started = time.monotonic()
    result = post(f"http://127.0.0.1:{receiver.port}/hook", deadline=1.0)
    took = time.monotonic() - started
    stop.set()
    assert not result.delivered and result.retryable and "within 1s" in (result.error or "")
    assert took < 3.0


def test_a_huge_reply_is_not_read() -> None:
    size = 300 * 1024 * 1024

    def flood(receiver: RawReceiver, connection: socket.socket) -> None:
        chunk = b"\0" * 65536
        while receiver.sent < size:
            connection.sendall(chunk)
            receiver.sent += len(chunk)

    head = f"HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n".encode()
    receiver = RawReceiver(head, flood)
    started = time.monotonic()
    result = post(f"http://127.0.0.1:{receiver.port}/hook", deadline=30.0)
    assert result.delivered and time.monotonic() - started < 5.0
    assert receiver.done.wait(10), "the reply was not cut off"
    assert receiver.sent < 32 * 1024 * 1024  # what socket buffers hold, not the reply


# --- Durable queue ---------------------------------------------------------------------------


def test_a_claimed_delivery_comes_due_again_when_its_lease_runs_out(stack: Stack) -> None:
    client = redis.Redis.from_url(own_stack(stack, 28, "webhook-queue").redis_url)
    client.flushdb()
    queue = DeliveryQueue(client)
    client.zadd(NOTIFY_KEY, {"j1": 1.0})
    assert queue.take_notified(NOTIFY_KEY) == 1 and not client.zcard(NOTIFY_KEY)
    now = time.time()
    (first,) = queue.claim(10, lease=40, now=now)
    assert (first.member, first.attempt, first.msg_id) == ("job:j1", 1, "job_j1")
    assert queue.claim(10, lease=40, now=now + 30) == []  # its claimant is still on it
    (again,) = queue.claim(10, lease=40, now=now + 41)  # its claimant died: another takes it
    assert again.member == "job:j1" and again.attempt == 2
    queue.retry_at(again, now + 100)
    assert queue.claim(10, lease=40, now=now + 99) == []
    queue.done(again)
    assert queue.claim(10, lease=40, now=now + 1000) == []
    assert not client.exists("agentq:webhooks:attempts")


# --- Through a real worker and the real API ----------------------------------------------------

MASTER = generate_webhook_secret()


class HoldingReceiver(Receiver):
    """Like ``Receiver``, but a request to /slow waits for ``release`` before it is answered."""

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.release = threading.Event()
        self.held = 0
        handler = self.server.RequestHandlerClass
        outer = self

        class Holding(handler):  # type: ignore[valid-type,misc]
            def do_POST(self) -> None:
                if self.path == "/slow":
                    outer.held += 1
                    outer.release.wait(60)
                super().do_POST()

        self.server.RequestHandlerClass = Holding


# One job slot on the worker, and deliveries that may take a minute each.
hooked = shared_stack(
    "hooked",
    lambda request: own_stack(
        request.getfixturevalue("stack"),
        27,
        "webhook-security",
        AGENTQ_WEBHOOK_SECRET=MASTER,
        AGENTQ_WEBHOOK_ALLOW_PRIVATE="true",
        AGENTQ_WEBHOOK_ALLOW_HTTP="true",
        AGENTQ_WEBHOOK_TIMEOUT_SECONDS="60",
        AGENTQ_WORKER_CONCURRENCY="1",
    ),
)


@pytest.fixture(scope="module")
def hooked_api(
    workers: Workers, request: pytest.FixtureRequest, service_dir: Path
) -> Iterator[Service]:
    hooked = workers.stack("hooked", request)
    service = start_api(hooked.env, service_dir)
    hooked.logs.append(service.log_path)
    yield service
    service.stop()


def test_a_slow_receiver_does_not_hold_the_only_job_slot(hooked: Stack, model_double: Any) -> None:
    receiver = HoldingReceiver()
    try:
        client = hooked.client()
        slow = receiver.url.replace("/hook", "/slow")
        client.submit("Which sites?", TOKEN_A, webhook_url=slow)
        wait_until(lambda: receiver.held == 1, 30, what="the held delivery")
        job_id = client.submit("Which devices?", TOKEN_A)
        done = client.wait(job_id, TOKEN_A, timeout=8)  # a held slot would keep it queued
        assert done.status == JobStatus.SUCCEEDED
        assert receiver.held == 1 and not receiver.requests  # still held all along
    finally:
        receiver.release.set()
        receiver.server.shutdown()


def test_each_tenant_verifies_only_its_own_deliveries(
    hooked: Stack, hooked_api: Service, receiver: Receiver
) -> None:
    secrets: dict[str, str] = {}
    for token in (TOKEN_A, TOKEN_B):
        printed = run_cli(hooked.env, "webhook-secret", token=token)
        assert printed.code == 0, printed.stderr
        secrets[token] = printed.stdout.strip()
        fetched = httpx.get(
            f"{hooked_api.base_url}/v1/webhook-secret",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert fetched.status_code == 200 and fetched.json() == {"secret": secrets[token]}
    assert secrets[TOKEN_A].startswith("whsec_") and secrets[TOKEN_A] != secrets[TOKEN_B]

    client = hooked.client()
    ids = {client.submit("Which sites?", t, webhook_url=receiver.url): t for t in secrets}
    wait_until(lambda: len(receiver.requests) >= 2, 30, what="both deliveries")
    for headers, body in receiver.requests:
        owner = ids[headers["webhook-id"].removeprefix("job_")]
        other = TOKEN_B if owner == TOKEN_A else TOKEN_A
        lowered = {k.lower(): v for k, v in headers.items()}
        assert Webhook(secrets[owner]).verify(body, lowered)["type"] == "job.ended"
        with pytest.raises(WebhookVerificationError):
            Webhook(secrets[other]).verify(body, lowered)
        with pytest.raises(WebhookVerificationError):
            Webhook(MASTER).verify(body, lowered)


def test_webhook_secret_needs_the_setting_and_bad_urls_are_a_400(
    stack: Stack, hooked: Stack, hooked_api: Service, api: Service
) -> None:
    bad = httpx.post(
        f"{hooked_api.base_url}/v1/jobs",
        json={"question": "q?", "webhook_url": "http://h:99999/hook"},
        headers={"Authorization": f"Bearer {TOKEN_A}"},
        timeout=10,
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
    cli = run_cli(hooked.env, "submit", "q?", "--webhook", "http://[::1", token=TOKEN_A)
    assert_one_line_error(cli, 2, "webhook URL")
    assert_one_line_error(run_cli(stack.env, "webhook-secret", token=TOKEN_A), 2, "not set")
    refused = httpx.get(
        f"{api.base_url}/v1/webhook-secret",  # the session's API: no AGENTQ_WEBHOOK_SECRET
        headers={"Authorization": f"Bearer {TOKEN_A}"},
        timeout=10,
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "bad_request"
