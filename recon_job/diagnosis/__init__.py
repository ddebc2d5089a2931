"""The rules that say where and why local and OpenAI figures drift (issue 12); pure.

Each module is one rule over data already fetched, with no I/O and no clock (layer 0, like
:mod:`recon_job.compare`): ``gaps`` (the UTC intervals holding a gap), ``shift`` (a constant clock
shift between the hourly series), ``bridge`` (a cost difference in named parts that add up),
``prices`` (billed unit prices against the price table), ``shadow`` (projects, keys and users the
logs never mention), ``trends`` (a CUSUM change point in a drift series). What they produce is
:mod:`recon_job.findings`; what fetches their inputs is :mod:`recon_job.investigate`.
"""

from __future__ import annotations

__all__: list[str] = []
