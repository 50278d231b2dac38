"""Production settings: `check --deploy` is clean with the documented production environment,
and the settings refuse to start without a secret key."""
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def env_example():
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def manage(*args, **env):
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_production_environment():
    env = env_example()
    env["SECRET_KEY"] = "a-production-like-secret-" + "x7Qp2mZ9vL4kR8sT1wN6yB3cF5hJ0dG" * 2
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_settings_refuse_to_start_without_a_secret_key_unless_debugging():
    result = manage("check", DEBUG="0")
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr
    assert manage("check", DEBUG="1").returncode == 0


def test_a_yes_no_setting_with_a_typo_stops_the_start_and_names_the_variable():
    result = manage("check", DEBUG="0", SECRET_KEY="k" * 60, SECURE_COOKIES="ture")
    assert result.returncode != 0
    assert "SECURE_COOKIES='ture' is not a yes/no value" in result.stderr


def test_a_number_setting_that_is_no_number_stops_the_start():
    result = manage("check", DEBUG="1", IMPORT_MAX_ROWS="lots")
    assert result.returncode != 0 and "IMPORT_MAX_ROWS='lots' is not a whole number" in result.stderr


def test_loading_the_settings_creates_no_folder(tmp_path):
    """Settings have no side effects: importing them (e.g. for `check`) writes nothing to disk."""
    before = {p for p in ROOT.iterdir()}
    var = ROOT / "var"
    had_var = var.exists()
    result = manage("check", DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert result.returncode == 0, result.stderr
    assert {p for p in ROOT.iterdir()} == before and var.exists() == had_var


def test_the_docker_image_ships_neither_tests_nor_benchmarks_nor_test_packages():
    ignored = {line.strip().strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"tests", "bench", "requirements-dev.txt"} <= ignored
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-r requirements.txt" in dockerfile and "requirements-dev" not in dockerfile
    production = {line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if "==" in line}
    assert not production & {"pytest", "pytest-django", "hypothesis", "playwright", "pycap", "ruff", "import-linter"}


def test_docker_compose_runs_web_worker_sealer_soft_checks_proxy_database_and_redis():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "redis", "web", "worker", "sealer", "soft-checks", "proxy"}
    assert "manage.py soft_checks_sync;" in services["soft-checks"]["command"][-1]
    assert services["worker"]["command"][:4] == ["celery", "-A", "registry", "worker"]
    assert services["worker"]["environment"]["REDIS_URL"] == services["web"]["environment"]["REDIS_URL"]
    assert "ports" not in services["web"]  # reached through the proxy only
    nginx = compose["configs"]["nginx"]["content"]
    body_limit_mb = int(re.search(r"client_max_body_size (\d+)m;", nginx).group(1))
    assert body_limit_mb * 2**20 > 50 * 2**20  # the default upload limit passes the proxy
    assert "proxy_request_buffering on;" in nginx and "client_body_timeout" in nginx
