"""``python -m recon_job`` and the ``recon-job`` console script.

The CLI is imported inside ``main()``, not at the top: log scanning runs in spawned worker
processes, and a spawned worker re-imports the parent's main script. Importing the whole app
there would cost each worker about a second and 90 MB.
"""


def main() -> None:
    """Run the ``recon-job`` command line."""
    from recon_job.cli.main import main as cli

    cli()


if __name__ == "__main__":
    main()
