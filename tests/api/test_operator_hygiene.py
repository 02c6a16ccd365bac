"""What an operator of an offline, shared host needs from the running server (issue 18, row 16): /docs with no
file from the internet, a bounded job `metadata`, $LLMFT_HOME readable by its user alone, and an access log
with no query string (an API key sent as ?api_key= must not be written there)."""

import re
import stat
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "brokerage_support.jsonl"
ASSETS = ROOT / "llmft" / "web" / "static" / "docs"  # swagger-ui-dist, as its README there says


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def test_docs_load_swagger_ui_from_the_server_itself(server):
    page = requests.get(f"{server}/docs", timeout=10)
    assert page.status_code == 200
    loaded = re.findall(r'(?:src|href)="([^"]*)"', page.text) + re.findall(r'\burl: "([^"]*)"', page.text)
    assert loaded and all(url.startswith("/") and not url.startswith("//") for url in loaded), loaded  # no CDN
    policy = page.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"  # nothing from another origin, whatever the page asks
    assert directives["script-src"].startswith("'self' 'sha256-") and "unsafe" not in directives["script-src"]
    assets = [url for url in loaded if url != "/openapi.json"]
    assert {Path(asset).name for asset in assets} == {"swagger-ui.css", "favicon-32x32.png", "swagger-ui-bundle.js",
                                                      "swagger-ui-standalone-preset.js"}
    for asset in assets:
        reply = requests.get(server + asset, timeout=10)
        assert reply.status_code == 200 and reply.content == (ASSETS / Path(asset).name).read_bytes(), asset
    bundle = requests.get(f"{server}/ui/static/docs/swagger-ui-bundle.js", timeout=10)
    assert "SwaggerUIBundle" in bundle.text and bundle.headers["Content-Type"].startswith("text/javascript")


def test_job_metadata_is_bounded_like_openais(server, keys):
    def create(metadata):
        # no dataset: a metadata within the limits reaches the dataset check (422 on dataset_id), one past them stops first
        return requests.post(f"{server}/api/v1/jobs", headers=auth(keys["alice"]), timeout=30,
                             json={"dataset_id": "ds-none", "metadata": metadata})

    within = create({f"k{i:02d}" + "k" * 61: "v" * 512 for i in range(16)})  # 16 pairs, keys of 64, values of 512
    assert within.status_code == 422 and within.json()["error"]["details"] == {"param": "dataset_id"}, within.text
    for metadata, why in (({f"k{i}": "v" for i in range(17)}, "Longer than maximum length 16"),
                          ({"note": "v" * 513}, "Longer than maximum length 512"),
                          ({"k" * 65: "v"}, "Longer than maximum length 64"),
                          ({"n": 1}, "Not a valid string"), ({"big": "x" * 1_000_000}, "Longer than maximum length 512")):
        reply = create(metadata)
        assert reply.status_code == 422 and "metadata" in reply.json()["error"]["details"]["json"], reply.text[:300]
        assert why in reply.text

def test_llmft_home_is_readable_by_its_user_alone(server, server_env, keys):
    uploaded = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]), timeout=120,
                             files={"file": ("private.jsonl", SAMPLE.read_bytes()[:4000].rsplit(b"\n", 1)[0] + b"\n")})
    assert uploaded.status_code == 201, uploaded.text
    home = Path(server_env["LLMFT_HOME"])
    made = [path for path in home.rglob("*") if path.name != "server.log" and not path.is_symlink()
            and path != home / "models"]  # the test made these two itself
    assert [path for path in made if path.parent == home / "uploads"]  # the dataset just uploaded
    if "DATABASE_URL" not in server_env:
        assert home / "llmft.db" in made
    shared = {str(path.relative_to(home)): oct(stat.S_IMODE(path.stat().st_mode)) for path in made
              if path.stat().st_mode & 0o077}
    assert shared == {}  # files 0600, folders 0700


def test_the_access_log_holds_no_query_string(server, server_env):
    secret = "llmft-not-a-real-key-but-secret-4b1d"
    for path in ("/healthz", "/api/v1/jobs", "/v1/models"):
        requests.get(f"{server}{path}", params={"api_key": secret, "after": "x"}, timeout=10)
    log = (Path(server_env["LLMFT_HOME"]) / "server.log").read_text()
    assert secret not in log and "api_key" not in log
    assert re.search(r'"GET /api/v1/jobs HTTP/1\.1" 401', log), log[-2000:]
