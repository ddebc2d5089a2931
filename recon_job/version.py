"""The one place recon-job's version is written (pyproject reads it without importing)."""

__version__ = "0.1.0"
