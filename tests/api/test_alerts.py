"""/api/v1/alerts over HTTP: the list, and the tenant's webhooks and thresholds (admins change them)."""

import requests
from test_registry import auth

from tests.api.conftest import make_key


def test_alert_settings_round_trip_and_are_checked(server, keys, server_env):
    # a tenant of its own: the defaults are read first, whichever test files ran on this server before
    keys = {**keys, "alice": make_key(server_env, "alerts-round-trip", "admin")}
    url = f"{server}/api/v1/alerts/settings"
    before = requests.get(url, headers=auth(keys["alice"]), timeout=10)
    assert before.status_code == 200 and before.json()["rules"]["loss_spike_factor"] == 3.0
    saved = requests.put(url, headers=auth(keys["alice"]), timeout=10,
                         json={"webhooks": ["https://hooks.example.com/a"], "rules": {"stalled_minutes": 5}})
    assert saved.status_code == 200, saved.text
    assert saved.json()["webhooks"] == ["https://hooks.example.com/a"] and saved.json()["rules"]["stalled_minutes"] == 5
    rl = requests.put(url, headers=auth(keys["alice"]), json={"rules": {"rl_clipped_share": 0.3}}, timeout=10)
    assert rl.status_code == 200 and rl.json()["rules"]["rl_clipped_share"] == 0.3  # a GRPO threshold, per tenant
    assert rl.json()["rules"]["stalled_minutes"] == 5 and rl.json()["rules"]["rl_reward_flat_steps"] == 20
    for body, where in [({"webhooks": ["ftp://x"]}, "webhooks[0]"), ({"rules": {"stalled_minutes": -1}}, "stalled_minutes"),
                        ({"rules": {"nan_loss": False}}, "nan_loss"), ({"webhook": []}, "webhook"),
                        ({"rules": {"rl_clipped_share": 1.5}}, "rl_clipped_share")]:
        response = requests.put(url, headers=auth(keys["alice"]), json=body, timeout=10)
        assert response.status_code == 422 and where in response.text, (body, response.text)
    assert requests.put(url, headers=auth(keys["alice_viewer"]), json={}, timeout=10).status_code == 403
    assert requests.put(url, headers=auth(keys["bob"]), json={}, timeout=10).status_code == 403  # a member
    assert requests.get(url, headers=auth(keys["bob"]), timeout=10).json()["webhooks"] == []  # tenants apart


def test_alert_list_pages_and_is_scoped(server, keys):
    response = requests.get(f"{server}/api/v1/alerts", headers=auth(keys["bob"]), params={"limit": 5}, timeout=10)
    assert response.status_code == 200 and set(response.json()) == {"data", "has_more"}
    assert all(alert["job_id"] is None or alert["job_id"].startswith("job-") for alert in response.json()["data"])
    assert requests.get(f"{server}/api/v1/alerts", timeout=10).status_code == 401
    assert requests.get(f"{server}/api/v1/alerts", headers=auth(keys["bob"]), params={"limit": 0},
                        timeout=10).status_code == 422
