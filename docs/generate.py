"""Regenerate the README's examples from the demo, so they cannot drift from what the registry does:
`make docs` (this script) builds the demo on its own SQLite database (var/docs.sqlite3), writes the
survival report between the README's `<!-- demo:survival-report -->` markers and takes the
screenshots in docs/screenshots/ with Chromium against a local server.

tests/test_readme.py checks that the README's report is the demo's, so a change of the statistics
or of the demo without `make docs` fails the suite.
"""
import io
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCREENSHOTS = ROOT / "docs" / "screenshots"
START, END = "<!-- demo:survival-report -->", "<!-- /demo:survival-report -->"
DEMO_PASSWORD = "demo-registry-2025"
CHROMIUM = "/usr/bin/chromium"
# The report's first line ends with the time it was generated, the one part that changes by itself.
GENERATED = re.compile(r", generated \S+")


def report_text():
    """The text survival report of the registry in the current database, without its timestamp."""
    from django.core.management import call_command

    out = io.StringIO()
    call_command("survival_report", stdout=out)
    return GENERATED.sub("", out.getvalue()).rstrip() + "\n"


def readme_with(report, readme=None):
    """The README with `report` as its example (between the markers)."""
    readme = README.read_text() if readme is None else readme
    head, rest = readme.split(START, 1)
    _old, tail = rest.split(END, 1)
    return f"{head}{START}\n```\n{report}```\n{END}{tail}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshots(env):
    """Screenshots of the demo as its users see it, against `manage.py runserver` on a free port."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"])
            for user, shots in SHOTS.items():
                page = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB").new_page()
                page.set_default_timeout(120_000)
                page.goto(f"{base}/accounts/login/")
                page.fill("#id_username", user)
                page.fill("#id_password", DEMO_PASSWORD)
                page.press("#id_password", "Enter")
                page.wait_for_load_state()
                for name, path, element in shots:
                    page.goto(base + path)
                    page.wait_for_load_state("networkidle")
                    target = page.locator(element).first if element else page
                    target.screenshot(path=SCREENSHOTS / name, **({} if element else {"full_page": True}))
                    print(f"docs/screenshots/{name}")
            browser.close()
    finally:
        server.terminate()
        server.wait()


def first_patient():
    from registry.models import Patient

    return Patient.objects.filter(centre="MUC", metastasectomies__isnull=False).order_by("pk").first().pk


# {user: [(file, path, element or None for the full page)]}, filled in main() once Django is set up.
SHOTS = {}


def main():
    db = ROOT / "var" / "docs.sqlite3"
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": f"sqlite:///{db}"}
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    sys.path.insert(0, str(ROOT))
    import django

    db.unlink(missing_ok=True)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("seed_demo", stdout=io.StringIO())
    README.write_text(readme_with(report_text()))
    print("README.md: survival report")
    patient = first_patient()
    SHOTS.update({
        "nurse.muc": [("patient-page.png", f"/patients/{patient}/", None),
                      ("data-quality.png", "/centres/MUC/data-quality/", None),
                      ("two-factor-setup.png", "/accounts/two-factor/setup/", None)],
        "pi": [("dashboard.png", "/analysis/", None),
               ("dashboard-km.png", "/analysis/?stratify=size_gt_2cm", "section[aria-labelledby=km-dfs-title]")],
        "coordinator": [("study-progress.png", "/progress/", None)],
    })
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshots(env)


if __name__ == "__main__":
    main()
