"""Usage sources: where the figures of both sides come from.

Every source implements :class:`~recon_job.sources.base.UsageSource` (one method,
``fetch(window) -> UsageTotals``). Local sources — the application's NDJSON logs (:mod:`.ndjson`)
and its database table (:mod:`.sql`) — estimate cost with a :class:`~.base.Pricer` when a record
carries none, summing per UTC day and group first (:mod:`.aggregate`). Official sources report what
OpenAI counted and billed: its organization Usage and Costs APIs (:mod:`.openai`) or, offline, the
usage dashboard's CSV exports (:mod:`.exports`). The local sources also sum their usage per
hour or minute for the gap locator (:class:`~.base.SeriesSource`).
"""

from recon_job.sources.base import Pricer, SeriesKey, SeriesSource, UsageSource

__all__ = ["Pricer", "SeriesKey", "SeriesSource", "UsageSource"]
