"""Settings: one TOML file, environment variables and ``*_FILE`` secrets, validated loudly.

Every rule about settings lives here: in the pydantic models (:mod:`.settings`, :mod:`.alerts`,
:mod:`.daemon`, the price file in :mod:`.prices`) or, for rules that need the filesystem or a
connection, in :mod:`.checks`. ``recon-job check-config`` and every run apply exactly the same
checks. :mod:`.load` reads the raw inputs (documented environment variables, the TOML file,
secret files) and lists every problem at once.
"""

from recon_job.config.alerts import AlertsSettings, EmailSettings, SlackSettings, WebhookSettings
from recon_job.config.daemon import DaemonSettings, split_listen
from recon_job.config.load import ENV_VARS, FALLBACK_KEY_VAR, SECRET_KEYS, secret_values
from recon_job.config.settings import (
    HistorySettings,
    LoggingSettings,
    LogsSettings,
    ModelsSettings,
    NdjsonSourceSettings,
    OpenAISettings,
    PricingSettings,
    ReconcileSettings,
    RunsSettings,
    Settings,
    SourceSettings,
    SqlSourceSettings,
    load_settings,
)

__all__ = [
    "ENV_VARS",
    "FALLBACK_KEY_VAR",
    "SECRET_KEYS",
    "AlertsSettings",
    "DaemonSettings",
    "EmailSettings",
    "HistorySettings",
    "LoggingSettings",
    "LogsSettings",
    "ModelsSettings",
    "NdjsonSourceSettings",
    "OpenAISettings",
    "PricingSettings",
    "ReconcileSettings",
    "RunsSettings",
    "Settings",
    "SlackSettings",
    "SourceSettings",
    "SqlSourceSettings",
    "WebhookSettings",
    "load_settings",
    "secret_values",
    "split_listen",
]
