"""The README's example survival report is the demo's: `make docs` writes it, and this test fails
when the statistics, the report's layout or the demo changed without it."""
import importlib.util
import io
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]


def generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readmes_survival_report_is_the_demos():
    docs = generator()
    cache.clear()
    call_command("seed_demo", stdout=io.StringIO())
    readme = docs.README.read_text()
    assert docs.readme_with(docs.report_text(), readme) == readme, "run `make docs` to update README.md"


def test_the_readme_example_replaces_only_the_text_between_its_markers():
    docs = generator()
    before = f"intro\n{docs.START}\n```\nold\n```\n{docs.END}\nrest\n"
    assert docs.readme_with("new\n", before) == f"intro\n{docs.START}\n```\nnew\n```\n{docs.END}\nrest\n"
