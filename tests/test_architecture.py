"""The architecture contract: one writer of clinical data, and which layer may import which."""
import pathlib
import subprocess
import sys

import pytest
from django.db import transaction

from registry.models import Patient
from tests import factories as f
from tests.writers import ROOT, OutsideServicesWrite

pytestmark = pytest.mark.django_db


def run_as(module_path, source, **names):
    """Run `source` as if it were code of `module_path` (so its frames carry that file name)."""
    exec(compile(source, str(ROOT / module_path), "exec"), {**names})


def test_a_web_module_that_writes_a_clinical_table_itself_is_refused():
    patient = f.patient("MUC")
    with pytest.raises(OutsideServicesWrite, match="registry/web/views.py wrote registry_patient"), transaction.atomic():
        run_as("registry/web/views.py", "Patient.objects.filter(pk=pk).update(ecog=3)", Patient=Patient, pk=patient.pk)
    assert Patient.objects.get().ecog == 0


def test_the_import_may_not_write_past_the_services_either():
    patient = f.patient("MUC")
    with pytest.raises(OutsideServicesWrite, match="registry/transfer/importing/merge.py"):
        run_as("registry/transfer/importing/merge.py", "patient.delete()", patient=patient)


def test_a_service_may_write():
    patient = f.patient("MUC")
    run_as("registry/services/records.py", "Patient.objects.filter(pk=pk).update(ecog=3)", Patient=Patient, pk=patient.pk)
    assert Patient.objects.get().ecog == 3


def test_the_import_layers_hold():
    """lint-imports (pyproject.toml): the registry never imports the analysis app, the analysis app
    reads the registry through its selectors, and no layer imports one above it."""
    lint_imports = pathlib.Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "BROKEN" not in result.stdout
