"""Tests of the deploy artefacts: Kubernetes manifests, Dockerfile, systemd unit, crontab, env file.

Static checks only, offline and fast: every manifest passes the Kubernetes OpenAPI schema
(``kubernetes-validate``, strict: unknown fields fail), and the posture that
``reliability.md`` §2.2 recommends is asserted field by field, so a later edit that drops
``concurrencyPolicy: Forbid`` or the exit-code rule fails here rather than in production.
"""

from __future__ import annotations

import configparser
import functools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from recon_job.config import ENV_VARS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
#: The oldest Kubernetes the manifests promise to work on (podFailurePolicy is beta and on by
#: default from 1.26, GA in 1.31; timeZone GA in 1.27), and the newest schema bundled offline.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
#: Variable names whose values are secrets; they may only come from a Secret or a *_FILE.
SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN|WEBHOOK|PING_URL|DATABASE_URL")
#: Marks every placeholder in the example files as fake.
FAKE = "REPLACE-ME"
#: What an OpenAI key looks like; one without the FAKE marker could be real.
OPENAI_KEY = re.compile(r"sk-[A-Za-z0-9_-]{16,}")
#: The read-only root filesystem needs a writable /tmp (a mount path, not a file we create).
TMP = "/tmp"  # noqa: S108
#: Variables the daemon/ping/pushgateway work documents before they reach ENV_VARS.
EXTRA_ENV = ("RECON_CONFIG", "RECON_PING_URL", "RECON_PUSHGATEWAY_URL", "RECON_DAEMON__LISTEN")


def looks_real(value: str) -> bool:
    """True when ``value`` holds something shaped like an OpenAI key that is not a placeholder."""
    return any(FAKE not in match for match in OPENAI_KEY.findall(value))


@functools.cache
def load_all(path: Path) -> tuple[dict[str, Any], ...]:
    """The documents of one YAML file, parsed once per session (tests must not mutate them)."""
    with path.open(encoding="utf-8") as fh:
        return tuple(doc for doc in yaml.safe_load_all(fh) if doc is not None)


def only(kind: str) -> dict[str, Any]:
    docs = [doc for path in MANIFESTS for doc in load_all(path) if doc["kind"] == kind]
    assert len(docs) == 1, f"expected one {kind}, found {len(docs)}"
    return docs[0]


def pod_spec(kind: str) -> dict[str, Any]:
    doc = only(kind)
    if kind == "CronJob":
        return dict(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(doc["spec"]["template"]["spec"])


def container(kind: str) -> dict[str, Any]:
    [main] = pod_spec(kind)["containers"]
    return dict(main)


def env_of(kind: str) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container(kind)["env"]}


def secret_refs(kind: str) -> Iterator[tuple[str, str]]:
    """(secret name, key) of every Secret key the workload reads, from env and volumes."""
    for entry in container(kind)["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            yield ref["name"], ref["key"]
    for volume in pod_spec(kind)["volumes"]:
        if "secret" in volume:
            for item in volume["secret"].get("items", []):
                yield volume["secret"]["secretName"], item["key"]


WORKLOADS = ("CronJob", "Deployment")


# --- every manifest ---------------------------------------------------------------------------


def test_the_expected_manifests_are_there() -> None:
    assert {path.name for path in MANIFESTS} == {
        "cronjob.yaml",
        "deployment.yaml",
        "secret.example.yaml",
    }


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_each_manifest_passes_the_kubernetes_schema_strictly(path: Path, version: str) -> None:
    docs = load_all(path)

    assert docs, f"{path.name} holds no document"
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


# --- CronJob (run-once) -----------------------------------------------------------------------


def test_the_cronjob_never_overlaps_and_runs_daily_in_utc() -> None:
    spec = only("CronJob")["spec"]

    assert spec["schedule"] == "0 6 * * *"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    # Under 10 s the controller may never start it; the app's catch-up covers longer gaps.
    assert spec["startingDeadlineSeconds"] == 3600
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1


def test_the_cronjob_bounds_retries_and_duration() -> None:
    job = only("CronJob")["spec"]["jobTemplate"]["spec"]
    pod = pod_spec("CronJob")

    assert 1 <= job["backoffLimit"] <= 3
    assert job["activeDeadlineSeconds"] > 600
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert job["activeDeadlineSeconds"] > pod["terminationGracePeriodSeconds"]


def test_the_cronjob_fails_at_once_on_exit_2_and_ignores_disruptions() -> None:
    rules = only("CronJob")["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    name = container("CronJob")["name"]

    fail_on = [r for r in rules if r["action"] == "FailJob" and "onExitCodes" in r]
    ignore = [r for r in rules if r["action"] == "Ignore" and "onPodConditions" in r]

    assert len(fail_on) == 1
    codes = fail_on[0]["onExitCodes"]
    assert (codes["operator"], codes["values"], codes["containerName"]) == ("In", [2], name)
    assert ignore
    assert {"type": "DisruptionTarget", "status": "True"} in ignore[0]["onPodConditions"]
    # Transient failures (exit 3) must stay retryable: no rule may fail or ignore them.
    for rule in rules:
        if "onExitCodes" in rule:
            assert 3 not in rule["onExitCodes"]["values"]


def test_the_cronjob_runs_the_due_periods() -> None:
    main = container("CronJob")

    assert main["args"] == ["run", "--due"]
    assert "command" not in main  # the image's ENTRYPOINT is recon-job


# --- Deployment (daemon) ----------------------------------------------------------------------


def test_the_daemon_runs_as_exactly_one_replica_replaced_not_rolled() -> None:
    spec = only("Deployment")["spec"]

    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert container("Deployment")["args"] == ["daemon"]


def test_the_daemon_is_probed_and_scraped_on_9108() -> None:
    main = container("Deployment")
    annotations = only("Deployment")["spec"]["template"]["metadata"]["annotations"]

    assert [p["containerPort"] for p in main["ports"]] == [9108]
    # Issue 9 item 27: an overdue period (/healthz's 503) must neither restart the pod nor take
    # it out of the Service: liveness asks /livez, readiness /readyz.
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 9108}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9108}
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9108",
        "prometheus.io/path": "/metrics",
    }


def test_the_daemon_listens_on_every_interface_inside_the_pod() -> None:
    # The daemon binds 127.0.0.1 by default, which the kubelet's probes cannot reach.
    assert env_of("Deployment")["RECON_DAEMON__LISTEN"]["value"] == "0.0.0.0:9108"


# --- both workloads ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKLOADS)
def test_no_secret_value_is_written_into_a_workload(kind: str) -> None:
    for name, entry in env_of(kind).items():
        if SECRET_NAME.search(name) and not name.endswith("_FILE"):
            assert "value" not in entry, f"{name} carries its secret inline"
            assert "secretKeyRef" in entry["valueFrom"], f"{name} must come from a Secret"
        value = str(entry.get("value", ""))
        assert not looks_real(value)
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"{name} has a password in a URL"


@pytest.mark.parametrize("kind", WORKLOADS)
def test_the_admin_key_is_mounted_as_a_file(kind: str) -> None:
    env = env_of(kind)
    mounts = {m["name"]: m for m in container(kind)["volumeMounts"]}

    assert "OPENAI_ADMIN_KEY" not in env
    path = env["OPENAI_ADMIN_KEY_FILE"]["value"]
    secrets = mounts["secrets"]
    assert path.startswith(secrets["mountPath"] + "/")
    assert secrets["readOnly"] is True


@pytest.mark.parametrize("kind", WORKLOADS)
def test_the_database_url_overrides_the_images_sqlite_default(kind: str) -> None:
    # The image sets RECON_DATABASE_URL, and a set variable wins over its *_FILE twin, so the
    # manifest must set the variable itself (from the Secret), never only a _FILE.
    env = env_of(kind)

    assert "RECON_DATABASE_URL_FILE" not in env
    assert env["RECON_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"


@pytest.mark.parametrize("kind", WORKLOADS)
def test_only_the_required_secret_keys_are_mandatory(kind: str) -> None:
    required = {
        entry["name"]
        for entry in container(kind)["env"]
        if "secretKeyRef" in entry.get("valueFrom", {})
        and not entry["valueFrom"]["secretKeyRef"].get("optional", False)
    }

    assert required == {"RECON_DATABASE_URL"}


@pytest.mark.parametrize("kind", WORKLOADS)
def test_every_secret_key_a_workload_reads_is_in_the_example_secret(kind: str) -> None:
    secret = only("Secret")
    keys = {(secret["metadata"]["name"], key) for key in secret["stringData"]}

    assert set(secret_refs(kind)) <= keys


@pytest.mark.parametrize("kind", WORKLOADS)
def test_the_workload_runs_unprivileged_on_a_read_only_root(kind: str) -> None:
    pod = pod_spec(kind)
    main = container(kind)
    context = main["securityContext"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    tmp = next(m for m in main["volumeMounts"] if m["mountPath"] == TMP)
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])


@pytest.mark.parametrize("kind", WORKLOADS)
def test_the_workload_has_memory_for_the_log_scan(kind: str) -> None:
    resources = container(kind)["resources"]

    assert set(resources) == {"requests", "limits"}
    limit = resources["limits"]["memory"]
    assert limit.endswith("Mi")
    assert int(limit.removesuffix("Mi")) >= 256


@pytest.mark.parametrize("kind", WORKLOADS)
def test_no_workload_keeps_sqlite_on_a_shared_volume(kind: str) -> None:
    pod = pod_spec(kind)

    for volume in pod["volumes"]:
        assert "nfs" not in volume
    for entry in container(kind)["env"]:
        assert not str(entry.get("value", "")).startswith("sqlite")


# --- the example Secret -----------------------------------------------------------------------


def test_the_example_secret_holds_only_obviously_fake_values() -> None:
    secret = only("Secret")

    assert "data" not in secret  # base64 would hide what is in it
    assert {"openai-admin-key", "database-url"} <= set(secret["stringData"])
    for key, value in secret["stringData"].items():
        assert FAKE in value, f"{key} does not look like a placeholder"
        assert not looks_real(value)


# --- Dockerfile -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(DEPLOY / "Dockerfile"), cache_content=True)


def instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    starts = [n for n, i in enumerate(parser.structure) if i["instruction"] == "FROM"]
    return list(parser.structure[starts[-1] :])


def test_the_dockerfile_is_multi_stage_on_python_3_11_slim(dockerfile: DockerfileParser) -> None:
    assert dockerfile.is_multistage
    assert len(instructions(dockerfile, "FROM")) >= 2
    assert set(dockerfile.parent_images) == {"python:3.11-slim"}
    assert any("--from=builder" in value for value in instructions(dockerfile, "COPY"))


def test_the_image_runs_as_a_fixed_non_root_user(dockerfile: DockerfileParser) -> None:
    users = [i["value"] for i in final_stage(dockerfile) if i["instruction"] == "USER"]

    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"  # the runAsUser of the manifests


def test_the_image_runs_recon_job_due_periods_by_default(dockerfile: DockerfileParser) -> None:
    assert instructions(dockerfile, "ENTRYPOINT")[-1] == '["recon-job"]'
    assert instructions(dockerfile, "CMD")[-1] == '["run", "--due"]'


def test_the_image_keeps_its_history_on_the_data_volume(dockerfile: DockerfileParser) -> None:
    assert instructions(dockerfile, "WORKDIR")[-1] == "/data"
    assert "/data" in instructions(dockerfile, "VOLUME")[-1]
    assert dockerfile.envs["RECON_DATABASE_URL"] == "sqlite:////data/recon_history.db"
    assert dockerfile.envs["PYTHONUNBUFFERED"] == "1"


def test_the_image_bakes_in_no_secret_and_fetches_nothing(dockerfile: DockerfileParser) -> None:
    for value in instructions(dockerfile, "ADD"):
        assert not re.search(r"https?://", value)
    for value in instructions(dockerfile, "ENV") + instructions(dockerfile, "ARG"):
        assert not looks_real(value)
        for word in shlex.split(value):
            name = word.split("=", 1)[0]
            assert not SECRET_NAME.search(name) or name == "RECON_DATABASE_URL", name
    assert not re.search(r"://[^/@\s]+:[^/@\s]+@", dockerfile.content)


def test_the_files_the_dockerfile_copies_exist_in_the_build_context(
    dockerfile: DockerfileParser,
) -> None:
    # The build context is the repository root: docker build -f deploy/Dockerfile .
    for value in instructions(dockerfile, "COPY"):
        words = [w for w in value.split() if not w.startswith("--")]
        if any(w.startswith("--from") for w in value.split()):
            continue
        for source in words[:-1]:
            assert (ROOT / source).exists(), source
            ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
            assert f"!{source}" in ignore.replace("/\n", "\n"), f"{source} is ignored"


# --- systemd ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / "recon-job.service", encoding="utf-8")
    return parser


def test_the_unit_runs_the_daemon_and_restarts_on_failure(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]

    assert service["Type"] == "simple"
    assert service["ExecStart"] == "/opt/recon-job/.venv/bin/recon-job daemon"
    assert service["Restart"] == "on-failure"
    assert int(service["RestartSec"]) > 0
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 30
    assert service["EnvironmentFile"] == "/etc/recon-job/recon.env"
    assert service["User"] == "recon-job"
    assert service["WorkingDirectory"] == "/var/lib/recon-job"
    assert service["StateDirectory"] == "recon-job"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_is_hardened(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]

    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["ReadWritePaths"] == "/var/lib/recon-job"
    assert service["CapabilityBoundingSet"] == ""
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


# --- crontab ----------------------------------------------------------------------------------

CRON_FIELD = re.compile(r"[0-9*/,-]+")


def cron_lines() -> list[tuple[list[str], str]]:
    lines = []
    for line in (ROOT / "crontab.example").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"[A-Z_]+=", line):
            continue
        fields = line.split(None, 5)
        lines.append((fields[:5], fields[5]))
    return lines


def test_the_crontab_has_a_daily_and_a_monthly_line() -> None:
    lines = cron_lines()
    text = (ROOT / "crontab.example").read_text(encoding="utf-8")

    assert len(lines) == 2
    (daily, _), (monthly, _) = lines
    assert daily[2:] == ["*", "*", "*"]
    assert monthly[2].isdigit()
    assert re.search(r"^CRON_TZ=UTC$", text, re.MULTILINE)


@pytest.mark.parametrize("index", [0, 1])
def test_each_crontab_line_runs_the_due_periods_under_flock(index: int) -> None:
    schedule, command = cron_lines()[index]

    assert len(schedule) == 5
    assert all(CRON_FIELD.fullmatch(field) for field in schedule), schedule
    assert "recon-job run --due" in command
    assert "flock -n /var/lib/recon-job/cron.lock" in command
    assert ". /etc/recon-job/recon.env" in command
    assert re.search(r">> \S+\.log 2>&1$", command)
    assert "%" not in command  # cron turns % into a newline


# --- recon.env.example ------------------------------------------------------------------------


def env_example() -> str:
    return (DEPLOY / "recon.env.example").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [*sorted(ENV_VARS), *EXTRA_ENV])
def test_the_env_example_documents_every_variable(name: str) -> None:
    assert re.search(rf"^#?{name}=", env_example(), re.MULTILINE), f"{name} is not documented"


@pytest.mark.parametrize("kind", WORKLOADS)
def test_every_variable_a_workload_sets_is_documented(kind: str) -> None:
    for name in env_of(kind):
        base = name.removesuffix("_FILE")
        assert re.search(rf"^#?{base}(?:_FILE)?=", env_example(), re.MULTILINE), name


def test_the_env_example_sets_no_secret_inline() -> None:
    for line in env_example().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.partition("=")
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), line
        assert (
            not SECRET_NAME.search(name) or name.endswith("_FILE") or value.startswith("sqlite:")
        ), line
        assert not looks_real(value)


# --- the dashboard: recon-job serve beside the CronJob (issue 11 item 5) -----------------------

DASHBOARD = KUBERNETES / "dashboard"


def dashboard(kind: str) -> dict[str, Any]:
    [doc] = [d for p in sorted(DASHBOARD.glob("*.yaml")) for d in load_all(p) if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", sorted(DASHBOARD.glob("*.yaml")), ids=lambda p: p.name)
def test_each_dashboard_manifest_passes_the_kubernetes_schema_strictly(
    path: Path, version: str
) -> None:
    for doc in load_all(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_dashboard_serves_alone_probed_on_livez_and_readyz() -> None:
    spec = dashboard("Deployment")["spec"]["template"]["spec"]
    [main] = spec["containers"]
    assert main["args"] == ["serve"]
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 9108}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9108}
    env = {e["name"]: e for e in main["env"]}
    assert env["RECON_WEB__LISTEN"]["value"] == "0.0.0.0:9108"
    assert env["RECON_DASHBOARD_KEY_FILE"]["value"].startswith("/run/secrets/")
    assert "value" not in env["RECON_DATABASE_URL"]  # from the Secret
    assert main["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_dashboard_service_targets_the_pods_named_port() -> None:
    service = dashboard("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == dashboard("Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
