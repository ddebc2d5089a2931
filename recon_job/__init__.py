"""recon-job: reconcile your own OpenAI usage logs against OpenAI's Usage and Costs APIs."""

__version__ = "0.1.0"
