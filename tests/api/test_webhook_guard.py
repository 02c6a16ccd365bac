"""Issue 18, rows 3 and 6, on the real server (WEBHOOK_ALLOW_PRIVATE unset): a tenant's webhook cannot aim at
loopback, private, link-local or reserved addresses in any spelling, and only an admin reads the URLs in full
(a viewer sees them with userinfo, path and query as ***). Delivery itself is tested in
tests/monitor/test_outbound.py."""

import pytest
import requests
from test_registry import auth

from tests.api.conftest import make_key

REFUSED = ["http://127.0.0.1:6379/", "http://[::1]:5432/", "http://0x7f000001:6379/", "http://2130706433/",
           "http://127.1:5432/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/latest/meta-data",
           "http://10.0.0.5/", "http://192.168.1.1/", "http://[fe80::1]/", "http://224.0.0.1/", "http://0.0.0.0/",
           "http://localhost:8000/", "https://user:pw@172.16.0.1/hook"]


@pytest.fixture(scope="module")
def member(server, server_env) -> str:
    return make_key(server_env, "acme", "member")


def test_non_public_webhook_hosts_are_refused_naming_the_field(server, keys):
    url = f"{server}/api/v1/alerts/settings"
    for webhook in REFUSED:
        response = requests.put(url, headers=auth(keys["alice"]), timeout=10,
                                json={"webhooks": ["https://hooks.example.com/ok", webhook]})
        assert response.status_code == 422, (webhook, response.text)
        error = response.json()["error"]
        assert error["details"]["param"] == "webhooks[1]" and "WEBHOOK_ALLOW_PRIVATE" in error["message"], webhook


def test_webhook_urls_are_whole_for_admins_and_masked_for_others(server, keys, member):
    url = f"{server}/api/v1/alerts/settings"
    secret = "https://bot:t0ken-123@hooks.slack.com/services/T0/B0/XyZsecret?channel=ops"
    saved = requests.put(url, headers=auth(keys["alice"]), json={"webhooks": [secret]}, timeout=10)
    assert saved.status_code == 200 and saved.json()["webhooks"] == [secret], saved.text
    assert requests.get(url, headers=auth(keys["alice"]), timeout=10).json()["webhooks"] == [secret]
    for key in (keys["alice_viewer"], member):
        shown = requests.get(url, headers=auth(key), timeout=10)
        assert shown.status_code == 200 and shown.json()["webhooks"] == ["https://***@hooks.slack.com/***"]
        assert "t0ken" not in shown.text and "XyZsecret" not in shown.text
    assert requests.put(url, headers=auth(keys["alice"]), json={"webhooks": []}, timeout=10).json()["webhooks"] == []
