"""Production settings: `check --deploy` is clean with the documented production environment,
and the settings refuse to start without a secret key."""
import os
import subprocess
import sys
from pathlib import Path

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
