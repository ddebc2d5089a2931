"""``python -m recon_job`` and the ``recon-job`` console script.

The CLI is imported inside ``main()``, not at the top: log scanning runs in spawned worker
processes, and a spawned worker re-imports the parent's main script. Importing the whole app
there would cost each worker about a second and 90 MB.

The garbage collector is off while the process starts: imports, settings and tables build
hundreds of thousands of objects that live as long as the process, and a collection among them
finds nothing (the command turns it back on, ``recon_job.cli.common.started``). At exit the
collector is frozen: the interpreter's last collections would walk everything imported once
more (about 0.15 s of a short run) to free memory the OS frees anyway.
"""

import gc


def main() -> None:
    """Run the ``recon-job`` command line."""
    gc.disable()
    try:
        from recon_job.cli.main import main as cli

        cli()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
