"""Where webhooks may go, with real sockets: non-public addresses refused before any connection (by name or by any
numeric form), redirects not followed, one generic reason whatever a connection failure was, credentials sent as
Basic auth and never logged; and an alert whose stored webhook points at loopback is refused at delivery."""

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from llmft.auth.keys import authenticate, create_key
from llmft.db.session import session_scope
from llmft.db.tables import Alert, AlertSettings, Job
from llmft.monitor.alerts import notifier, raise_alert
from llmft.monitor.outbound import FAILED, REFUSED, masked, post_json, public, refused_literal
from llmft.settings import load_settings


class Answering:
    """A local HTTP server answering every POST with `status` (and `Location`), recording each request's headers."""

    def __init__(self, status: int = 200, location: str | None = None):
        self.requests: list[dict] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                seen.append(dict(self.headers))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def answering():
    made = []
    yield lambda **kwargs: made.append(Answering(**kwargs)) or made[-1]
    for server in made:
        server.close()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::",
                                     "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                                     "2002:7f00:1::", "2002:a00:1::"])
def test_non_public_addresses(address):
    assert not public(address)


def test_public_addresses():
    assert all(public(address) for address in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::"])


def test_literal_hosts_in_every_numeric_form_are_refused_without_a_lookup():
    for url in ["http://127.0.0.1:6379/", "http://[::1]:5432/", "http://0x7f000001/", "http://2130706433/",
                "http://127.1/", "http://017700000001/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/latest",
                "http://localhost:8000/", "http://LOCALHOST./", "http://db.localhost/", "https://u:p@10.0.0.1/"]:
        assert refused_literal(url) == REFUSED, url
    for url in ["https://hooks.slack.com/services/T/B/x", "http://8.8.8.8/", "https://[2606:4700:4700::1111]/",
                "https://no-such-host.invalid/"]:  # a name is checked at delivery, after it resolves
        assert refused_literal(url) is None, url


def test_masked_hides_userinfo_path_and_query():
    assert masked("https://user:t0k@hooks.slack.com/services/T/B/secret?k=v#f") == "https://***@hooks.slack.com/***"
    assert masked("http://127.0.0.1:9/closed") == "http://127.0.0.1:9/***"
    assert masked("https://hooks.example.com") == "https://hooks.example.com"
    assert masked("https://hooks.example.com/") == "https://hooks.example.com"


def test_loopback_is_refused_before_connecting_by_name_or_number(answering):
    target = answering()
    for host in ["127.0.0.1", "localhost", "0x7f000001", "2130706433", "127.1"]:
        assert post_json(f"http://{host}:{target.port}/hook", {"a": 1}, allow_private=False, timeout=5) == REFUSED
    assert target.requests == []
    assert post_json(f"http://localhost:{target.port}/hook", {"a": 1}, allow_private=True, timeout=5) is None
    assert len(target.requests) == 1


def test_redirects_are_not_followed(answering):
    final = answering()
    hop = answering(status=302, location=f"http://127.0.0.1:{final.port}/stolen")
    error = post_json(f"http://127.0.0.1:{hop.port}/hook", {}, allow_private=True, timeout=5)
    assert error == "HTTP 302 (redirects are not followed)"
    assert len(hop.requests) == 1 and final.requests == []


def test_a_closed_port_and_a_closing_service_read_the_same(caplog):
    """No port scanner: "Connection refused" and "Remote end closed connection" are one reason for the tenant."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]  # bound, never listening: the connection is refused
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: [listener.accept()[0].close() for _ in range(1)], daemon=True).start()
    with caplog.at_level(logging.WARNING, logger="llmft.outbound"):
        refused = post_json(f"http://user:s3cret-token@127.0.0.1:{closed_port}/x?key=also-secret", {},
                            allow_private=True, timeout=5)
        hung_up = post_json(f"http://127.0.0.1:{listener.getsockname()[1]}/x", {}, allow_private=True, timeout=5)
    listener.close()
    assert refused == hung_up == FAILED
    details = [record.getMessage() for record in caplog.records]  # the detail is in the server log
    assert len(details) == 2 and "ConnectionRefusedError" in details[0] and "ConnectionRefusedError" not in details[1]
    assert "s3cret-token" not in caplog.text and "also-secret" not in caplog.text and "***@127.0.0.1" in caplog.text


def test_userinfo_is_sent_as_basic_auth(answering):
    target = answering()
    assert post_json(f"http://hook%40user:t0k@127.0.0.1:{target.port}/h?x=1", {}, allow_private=True, timeout=5) is None
    assert target.requests[0]["Authorization"] == "Basic aG9va0B1c2VyOnQwaw=="  # base64("hook@user:t0k")
    assert target.requests[0]["Host"] == f"127.0.0.1:{target.port}"


def test_an_alert_to_a_stored_loopback_webhook_is_refused_at_delivery(database_url, tmp_path, answering, caplog):
    """A URL stored before the check existed (or a name that resolves to loopback) is refused when delivered; the
    operator's ALERT_WEBHOOKS still reach any address."""
    tenants_target, operators_target = answering(), answering()
    stored = f"http://user:s3cret@127.0.0.1:{tenants_target.port}/hook"
    settings = load_settings(llmft_home=tmp_path, database_url=database_url,
                             alert_webhooks=f"http://127.0.0.1:{operators_target.port}/ops")
    assert settings.webhook_allow_private is False  # the default
    with session_scope(database_url) as session:
        tenant_id = authenticate(session, create_key(session, tenant="acme", role="admin")[0]).tenant_id
        session.add(AlertSettings(tenant_id=tenant_id, webhooks=[stored], rules={}))
        job = Job(tenant_id=tenant_id, status="running", base_model="tiny-r1", method="full", hyperparameters={},
                  seed=1, metadata_={}, config={}, progress={})
        session.add(job)
    with caplog.at_level(logging.WARNING, logger="llmft"):
        with session_scope(database_url) as session:
            raise_alert(session, settings=settings, job=session.get(Job, job.id), rule="stalled", severity="warning",
                        message="m", key="stalled:test")
        notifier.flush()
    assert tenants_target.requests == [] and len(operators_target.requests) == 1
    with session_scope(database_url) as session:
        row = session.scalar(select(Alert))
        assert row.notified_at is not None  # the operator's webhook took it
        assert row.notify_error == f"http://***@127.0.0.1:{tenants_target.port}/***: {REFUSED}"
    assert "s3cret" not in caplog.text
