"""python manage.py paper_pack --freeze NAME [--plan plan.json] --out FILE.zip"""
from django.core.management.base import BaseCommand

from analysis.management.text import freeze_from_name, plan_from_file
from analysis.paper.pack import paper_pack


class Command(BaseCommand):
    help = ("Write the paper pack of a data freeze: Table 1 and the Cox tables (.docx, .csv), the Kaplan-Meier, "
            "cumulative-incidence and cohort-flow figures (PDF, SVG), the methods, the de-identified analysis data "
            "and reproduce.R / reproduce.py, in one zip. The same freeze and plan give the same bytes.")

    def add_arguments(self, parser):
        parser.add_argument("--freeze", required=True, metavar="NAME", help="the data freeze (manage.py freeze_create)")
        parser.add_argument("--plan", help="analysis plan as JSON (default: endpoints.md)")
        parser.add_argument("--out", required=True, help="the zip file to write")

    def handle(self, *args, freeze, plan, out, **options):
        frozen, plan = freeze_from_name(freeze), plan_from_file(plan)
        result = paper_pack(freeze=frozen, plan=plan, out=out)
        self.stdout.write(f"Wrote the paper pack of freeze {frozen.name} (plan '{plan.name}', {plan.hash}) to {out}: "
                          f"{result.size:,} bytes, SHA-256 {result.sha256}.")
