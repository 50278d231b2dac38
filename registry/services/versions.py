"""The data version: a counter per centre, moved by every write in the same transaction."""
from django.db.models import F

from registry.models import DataVersion


def bump_data_version(centre_codes):
    """Add one to the counters of these centres (one UPDATE; a centre's first write creates its row).

    Called last in a write's transaction, so the counter row is locked only until the commit."""
    codes = sorted(set(centre_codes))
    if not codes:
        return
    moved = DataVersion.objects.filter(centre_id__in=codes).update(counter=F("counter") + 1)
    if moved < len(codes):  # a centre's first write: create its row, then count this write
        present = set(DataVersion.objects.filter(centre_id__in=codes).values_list("centre_id", flat=True))
        missing = [code for code in codes if code not in present]
        # A concurrent first write may insert the same row: it then waits here, and both count.
        DataVersion.objects.bulk_create([DataVersion(centre_id=code) for code in missing], ignore_conflicts=True)
        DataVersion.objects.filter(centre_id__in=missing).update(counter=F("counter") + 1)
