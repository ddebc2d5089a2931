"""The ``recon-job`` command line: thin click commands over the library, one module per group."""

from recon_job.cli.main import main

__all__ = ["main"]
