"""The deployment files, checked with what runs here (no Docker engine): the compose file's
structure, every path the Dockerfile copies, the entry point's syntax and commands, and the
gunicorn configuration the image starts."""

import importlib
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_dockerfile_builds_cpu_and_cuda_images_in_stages_from_files_that_exist():
    steps = dockerfile()
    stages = [re.search(r"AS (\S+)", args).group(1) for op, args in steps if op == "FROM"]
    assert stages == ["cpu-base", "cuda-base", "build", "app"]
    assert ("ARG", "VARIANT=cpu") in steps and ("FROM", "${VARIANT}-base AS build") in steps
    for op, args in steps:
        if op == "COPY" and "--from" not in args:
            *sources, _ = args.split()
            assert all((ROOT / source).exists() for source in sources), args
        if op == "RUN":
            assert "torch==" not in args or "torch==2.13.0" in args  # the pinned PyTorch, CPU and CUDA
    assert ("USER", "llmft") in steps and ("ENTRYPOINT", '["llmft-start"]') in steps
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", ".env"} <= set(ignored)


def test_the_entry_point_migrates_first_and_runs_the_api_or_a_worker():
    script = ROOT / "deploy" / "start.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    assert script.stat().st_mode & 0o111
    text = script.read_text()
    assert text.index("llmft db upgrade") < text.index("exec gunicorn") < text.index("exec llmft worker")
    config = importlib.import_module("llmft.api.gunicorn_conf")  # what `-c python:llmft.api.gunicorn_conf` loads
    assert config.worker_class == "gthread" and config.workers == 1 and config.threads >= 16


def test_the_compose_stack_shares_one_state_volume_and_waits_for_its_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "api", "worker"}
    for name in ("api", "worker"):
        service = services[name]
        assert service["volumes"] == ["llmft-home:/var/lib/llmft"]
        environment = service["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"].startswith("redis://redis:6379")
        assert {dep: cond["condition"] for dep, cond in service["depends_on"].items()} == {
            "postgres": "service_healthy", "redis": "service_healthy"}
        assert service["build"]["args"]["VARIANT"] == "cpu"
    assert services["api"]["command"] == ["api"] and services["worker"]["command"] == ["worker"]
    assert services["api"]["ports"] == ["8000:8000"]
    assert all("healthcheck" in services[name] for name in ("postgres", "redis"))
    assert set(compose["volumes"]) == {"postgres-data", "redis-data", "llmft-home"}
