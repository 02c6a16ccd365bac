"""Datasets over HTTP against a running server: upload, validation errors, limits, tenants."""

import sqlite3
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def upload(server, key, name, content: bytes):
    return requests.post(f"{server}/api/v1/datasets", headers=auth(key), files={"file": (name, content)}, timeout=120)


def test_upload_validates_and_stores_the_sample(server, keys):
    response = upload(server, keys["alice"], "brokerage.jsonl", SAMPLE.read_bytes())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("ds-") and body["examples"] == 232 and body["report"]["errors"] == 0
    listed = requests.get(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=10).json()
    assert body["id"] in [d["id"] for d in listed["data"]]
    preview = requests.get(f"{server}/api/v1/datasets/{body['id']}/preview?n=2", headers=auth(keys["alice"]),
                           timeout=60).json()["data"]
    assert len(preview) == 2
    assert preview[0]["spans"][-1]["trained"] and preview[0]["spans"][-1]["text"].endswith("<｜end▁of▁sentence｜>")


def test_a_file_with_errors_is_422_with_the_report_and_nothing_stored(server, keys, server_env):
    before = requests.get(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=10).json()["data"]
    bad = b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n{oops\n'
    response = upload(server, keys["alice"], "bad.jsonl", bad)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_dataset"
    assert error["details"]["report"]["issues"][0]["code"] == "invalid_json"
    assert error["details"]["report"]["issues"][0]["line"] == 2
    after = requests.get(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=10).json()["data"]
    assert len(after) == len(before)
    uploads = Path(server_env["LLMFT_HOME"]) / "uploads"
    assert not [p for p in uploads.rglob(".incoming-*")]


def test_oversized_upload_is_413_and_unknown_extension_422(server, keys):
    response = upload(server, keys["alice"], "big.jsonl", b"x" * (3 * 1024 * 1024))
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    response = upload(server, keys["alice"], "../../etc/passwd", b"{}")
    assert response.status_code == 422 and response.json()["error"]["code"] == "unsupported_format"


def test_tenants_never_see_each_others_datasets(server, keys):
    mine = upload(server, keys["alice"], "mine.jsonl", SAMPLE.read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n").json()
    for method, path in [("get", ""), ("get", "/preview"), ("delete", "")]:
        response = requests.request(method, f"{server}/api/v1/datasets/{mine['id']}{path}", headers=auth(keys["bob"]),
                                    timeout=30)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    listed = requests.get(f"{server}/api/v1/datasets", headers=auth(keys["bob"]), timeout=10).json()["data"]
    assert mine["id"] not in [d["id"] for d in listed]
    assert requests.get(f"{server}/api/v1/datasets/{mine['id']}", headers=auth(keys["alice"]), timeout=10).ok


def test_viewers_read_but_cannot_write(server, keys):
    response = upload(server, keys["alice_viewer"], "v.jsonl", SAMPLE.read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert requests.get(f"{server}/api/v1/datasets", headers=auth(keys["alice_viewer"]), timeout=10).ok


def test_missing_unknown_and_revoked_keys_are_401(server, keys, server_env):
    from tests.api.conftest import make_key

    assert requests.get(f"{server}/api/v1/datasets", timeout=10).status_code == 401
    assert requests.get(f"{server}/api/v1/datasets", headers=auth("llmft_nope_nope"), timeout=10).status_code == 401
    key = make_key(server_env, "acme", "member")
    assert requests.get(f"{server}/api/v1/datasets", headers=auth(key), timeout=10).ok
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "llmft.cli", "keys", "revoke", "_".join(key.split("_")[:2])],
                   env=server_env, check=True, capture_output=True)
    response = requests.get(f"{server}/api/v1/datasets", headers=auth(key), timeout=10)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_keys_are_stored_hashed_and_never_logged(server, keys, server_env):
    requests.get(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=10)
    home = Path(server_env["LLMFT_HOME"])
    if "DATABASE_URL" not in server_env:
        dump = "\n".join(sqlite3.connect(home / "llmft.db").iterdump())
        assert keys["alice"] not in dump and keys["alice"].split("_")[2] not in dump
    assert keys["alice"] not in (home / "server.log").read_text()


def test_openapi_docs_and_error_shape(server, keys):
    spec = requests.get(f"{server}/openapi.json", timeout=10).json()
    assert "/api/v1/datasets" in spec["paths"] and spec["info"]["title"] == "llmft API"
    assert requests.get(f"{server}/docs", timeout=10).status_code == 200
    response = requests.get(f"{server}/no/such/route", timeout=10)
    assert response.status_code == 404 and set(response.json()["error"]) == {"code", "message", "details"}
    deadline = time.time() + 60
    while (ready := requests.get(f"{server}/readyz", headers=auth(keys["alice"]),  # an admin reads the checks
                                 timeout=10)).status_code != 200:  # the worker starts beside
        assert time.time() < deadline, ready.json()
        time.sleep(0.5)
    assert ready.json()["checks"] == {"database": "ok", "workers": "ok", "broker": "ok"}
    assert ready.json()["workers"][0].startswith("embedded@")


PAIRS = (b'{"prompt": "Fee on $400 at 5%?", "chosen": "$20.00", "rejected": "Fees vary a lot, it depends."}\n'
         b'{"messages": [{"role": "user", "content": "Refund window?"}], "chosen": {"content": "30 days."}, '
         b'"rejected": [{"role": "assistant", "content": "90 days."}]}\n')


def test_preference_pairs_are_validated_as_pairs_and_their_kind_recorded(server, keys):
    response = upload(server, keys["alice"], "pairs.jsonl", PAIRS)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["report"]["kind"] == "preference" and body["examples"] == 2
    assert body["report"]["preference"]["pairs"] == 2
    preview = requests.get(f"{server}/api/v1/datasets/{body['id']}/preview?n=1", headers=auth(keys["alice"]),
                           timeout=60).json()["data"]
    assert preview == [{"record": 1, "line": 1, "kind": "preference",
                        "prompt": "<｜begin▁of▁sentence｜><｜User｜>Fee on $400 at 5%?<｜Assistant｜><think>\n",
                        "chosen": "\n</think>\n\n$20.00<｜end▁of▁sentence｜>",
                        "rejected": "\n</think>\n\nFees vary a lot, it depends.<｜end▁of▁sentence｜>"}]


def test_a_pair_without_rejected_is_422_naming_the_line_and_an_unknown_kind_names_it(server, keys):
    bad = PAIRS + b'{"prompt": "Late fee?", "chosen": "$10.00"}\n{"prompt": "x", "chosen": "same", "rejected": "same"}\n'
    response = upload(server, keys["alice"], "pairs.jsonl", bad)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_dataset" and "missing_rejected at line 3, rejected" in error["message"]
    issues = error["details"]["report"]["issues"]
    assert [(i["code"], i["line"], i["field"]) for i in issues] == [
        ("missing_rejected", 3, "rejected"), ("chosen_equals_rejected", 4, "rejected")]
    response = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), data={"kind": "dpo"},
                             files={"file": ("pairs.jsonl", PAIRS)}, timeout=60)
    assert response.status_code == 422 and "kind" in response.text


def test_prompts_are_told_from_their_first_record_or_named_by_kind(server, keys):
    prompts = b'{"messages": [{"role": "user", "content": "2+2?"}], "reference_answer": "4"}\n'
    body = upload(server, keys["alice"], "prompts.jsonl", prompts).json()
    assert body["report"]["kind"] == "prompts" and body["report"]["prompts"]["with_reference"] == 1.0
    preview = requests.get(f"{server}/api/v1/datasets/{body['id']}/preview", headers=auth(keys["alice"]),
                           timeout=60).json()["data"]
    assert preview == [{"record": 1, "line": 1, "kind": "prompts", "reference": "4",
                        "prompt": "<｜begin▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜><think>\n"}]
    sft = SAMPLE.read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n"
    response = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), data={"kind": "prompts"},
                             files={"file": ("sft-as-prompts.jsonl", sft)}, timeout=60)
    assert response.status_code == 201 and response.json()["report"]["kind"] == "prompts"
    assert upload(server, keys["alice"], "sft.jsonl", sft).json()["report"]["kind"] == "sft"
