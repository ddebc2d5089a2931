"""``python -m recon_job`` runs the CLI."""

from recon_job.cli import main

main()
