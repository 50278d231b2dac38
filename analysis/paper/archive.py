"""Zip archives whose bytes depend on their content alone: entries in a given order, each with the
same fixed date, permissions and compression, so that the same files always give the same archive
(and the same SHA-256). Used for the paper pack itself and for the Word documents in it (a .docx is
a zip that python-docx stamps with the time of saving)."""
import datetime
import io
import zipfile

PERMISSIONS = 0o644 << 16  # rw-r--r--, as a Unix system records it


def _stamp(when):
    """A zip entry's date, in UTC (zip has no time zone, no year before 1980 and even seconds only)."""
    when = when.astimezone(datetime.UTC)
    return (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second // 2 * 2)


def write_zip(entries, out, when):
    """Write [(name, bytes)] to ``out`` (a path or a binary file) in that order, dated ``when``."""
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=_stamp(when))
            info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, PERMISSIONS
            archive.writestr(info, content, compresslevel=6)


def normalised_zip(data, when):
    """The zip ``data`` written again with its entries in the same order, dated ``when``."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        entries = [(info.filename, source.read(info)) for info in source.infolist()]
    buffer = io.BytesIO()
    write_zip(entries, buffer, when)
    return buffer.getvalue()
