"""Size limits on what securecase reads, shared by the command line and the core.

The raw copy of every report is committed to the cases repo and the case file holds every open
finding; GitHub refuses files above 100 MB, and a case far larger than these is no longer
something a person reviews. Both limits can be set per run (``--max-report-bytes``,
``--max-findings``).
"""

from __future__ import annotations

#: Bytes a report file may have.
MAX_REPORT_BYTES = 50_000_000
#: Open findings the reports of one run, or a case, may hold.
MAX_FINDINGS = 50_000
#: Case folders in one repository's folder beyond which an ingest that adds one warns:
#: GitHub recommends at most 3,000 entries per directory. ``securecase sweep`` keeps folders
#: far below it by retiring closed cases (``--retire-after``).
FOLDER_ENTRIES_WARNING = 2_500

#: Flagged lines a queued record keeps of what its ingest read from the checkout, at most
#: (as many as the open findings a run may hold: one line per finding without a snippet).
MAX_KEPT_LINES = MAX_FINDINGS
#: A kept line longer than this is kept as its digest: identity needs only that.
MAX_KEPT_LINE_CHARS = 400
#: Characters of paths and lines a queued record keeps at most, all together.
MAX_KEPT_CHARS = 2_000_000
#: Inferred path prefixes a queued record keeps at most, over all its reports (a report
#: written on one machine has one).
MAX_KEPT_PREFIXES = 100
