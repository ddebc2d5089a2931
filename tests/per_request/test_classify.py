"""The pure request matcher: it stands alone, with no database library behind it."""

from __future__ import annotations

import subprocess
import sys


def test_classifying_imports_no_database_library() -> None:
    """Importing the matcher (or the package's surface) loads no SQLAlchemy; the write-back does."""
    code = (
        "import sys\n"
        "import recon_job.per_request\n"
        "import recon_job.per_request.classify\n"
        "before = 'sqlalchemy' in sys.modules\n"
        "from recon_job.per_request import reconcile_requests\n"
        "print(before, 'sqlalchemy' in sys.modules)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["False", "True"], ran.stdout
