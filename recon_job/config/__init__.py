"""Settings: one TOML file, environment variables and ``*_FILE`` secrets, validated loudly.

Every rule about settings lives here: in the pydantic models (:mod:`.settings`, :mod:`.sources`,
:mod:`.alerts`, :mod:`.daemon`, the price file in :mod:`.prices`) or, for rules that need the
filesystem, the parsed price table or a connection, in :mod:`.checks`. ``recon-job check-config``
and every run apply exactly the same checks. :mod:`.load` reads the raw inputs (documented
environment variables, the TOML file, secret files); :mod:`.loader` validates them, listing
every problem at once.
"""

from recon_job.config.alerts import AlertsSettings, EmailSettings, SlackSettings, WebhookSettings
from recon_job.config.checks import (
    Uses,
    admin_key_problems,
    alias_problems,
    channel_problems,
    describe,
    every_problem,
    problems,
)
from recon_job.config.daemon import DaemonSettings, split_listen
from recon_job.config.families import FamiliesSettings
from recon_job.config.load import ENV_VARS, FALLBACK_KEY_VAR, SECRET_KEYS, secret_values
from recon_job.config.loader import Loaded, load_settings, read_settings
from recon_job.config.prices import BUNDLED_SOURCE, PriceFile, load_price_table, price_table_from
from recon_job.config.settings import (
    HistorySettings,
    LoggingSettings,
    ModelsSettings,
    OpenAISettings,
    PricingSettings,
    ReconcileSettings,
    RunsSettings,
    Settings,
)
from recon_job.config.sources import (
    LogsSettings,
    NdjsonSourceSettings,
    SourceSettings,
    SqlSourceSettings,
)
from recon_job.config.web import WebSettings

__all__ = [
    "BUNDLED_SOURCE",
    "ENV_VARS",
    "FALLBACK_KEY_VAR",
    "SECRET_KEYS",
    "AlertsSettings",
    "DaemonSettings",
    "EmailSettings",
    "FamiliesSettings",
    "HistorySettings",
    "Loaded",
    "LoggingSettings",
    "LogsSettings",
    "ModelsSettings",
    "NdjsonSourceSettings",
    "OpenAISettings",
    "PriceFile",
    "PricingSettings",
    "ReconcileSettings",
    "RunsSettings",
    "Settings",
    "SlackSettings",
    "SourceSettings",
    "SqlSourceSettings",
    "Uses",
    "WebSettings",
    "WebhookSettings",
    "admin_key_problems",
    "alias_problems",
    "channel_problems",
    "describe",
    "every_problem",
    "load_price_table",
    "load_settings",
    "price_table_from",
    "problems",
    "read_settings",
    "secret_values",
    "split_listen",
]
