"""python manage.py analysis_frame --out FILE.csv [--plan plan.json] [--centre CODE ...] [--freeze NAME]"""
from django.core.management.base import BaseCommand

from analysis.frame import analysis_frame
from analysis.management.text import freeze_from_name, plan_from_file


class Command(BaseCommand):
    help = "Write the analysis frame (one row per patient, endpoints.md columns) as CSV, for every centre."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="CSV file to write ('-' for standard output)")
        parser.add_argument("--plan", help="analysis plan as JSON (default: endpoints.md)")
        parser.add_argument("--centre", action="append", dest="centres", metavar="CODE",
                            help="only this centre (repeat for several)")
        parser.add_argument("--freeze", metavar="NAME",
                            help="from this data freeze (manage.py freeze_create) instead of the live registry")

    def handle(self, *args, out, plan, centres, freeze, **options):
        frozen = freeze_from_name(freeze)
        frame = analysis_frame(plan_from_file(plan), centres=centres, freeze=frozen)
        frame.to_csv(self.stdout if out == "-" else out, index=False)
        if out != "-":
            source = f", freeze {frozen.name} ({frozen.content_hash})" if frozen else ""
            self.stdout.write(f"Wrote {len(frame)} patients ({int(frame['eligible'].sum())} eligible) to {out} "
                              f"(plan '{frame.attrs['plan']}', {frame.attrs['plan_hash']}{source}).")
