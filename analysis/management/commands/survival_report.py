"""python manage.py survival_report [--json] [--plan plan.json] [--centre CODE ...] [--freeze NAME]"""
import json

from django.core.management.base import BaseCommand

from analysis.management.text import freeze_from_name, plan_from_file, render_report
from analysis.report import survival_report


class Command(BaseCommand):
    help = "Recompute the study's results from the pooled registry: text tables, or JSON with --json."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--plan", help="analysis plan as JSON (default: endpoints.md)")
        parser.add_argument("--centre", action="append", dest="centres", metavar="CODE",
                            help="only this centre (repeat for several)")
        parser.add_argument("--freeze", metavar="NAME",
                            help="from this data freeze (manage.py freeze_create) instead of the live registry")

    def handle(self, *args, plan, centres, freeze, **options):
        report = survival_report(plan_from_file(plan), centres=centres, freeze=freeze_from_name(freeze))
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, allow_nan=False))
        else:
            self.stdout.write(render_report(report))
