"""Checks the TOML the chart renders against the keys the services document.

Usage: check_config.py RENDERED.yaml REPO_ROOT

For each ConfigMap (or config Secret) holding <service>.toml: the TOML parses, and its keys are
exactly the documented ones — every key of deploy/<service>.toml (ingest, uploader, archiver,
backfill; control: the control.toml block of docs/CONTROL.md), keys shown commented out there
(`# key = ...`, optional keys) allowed —
apart from the keys the chart sets itself or takes from Secrets. A key the chart misses, or one
the services do not document, is reported. Prints one line per service.
"""

import re
import sys
import tomllib
from pathlib import Path

import yaml

# Keys the chart does not render into the file, on purpose.
NOT_IN_FILE = {
    "ingest.instance_id",  # the pod's name, from the environment (DWSYNC_INGEST__INSTANCE_ID)
    "handoff.instance_id",  # the uploader's: the pod's name, from the environment (DWSYNC_HANDOFF__INSTANCE_ID)
    "api.admin_token",  # from a Secret (DWSYNC_API__ADMIN_TOKEN)
    "destinations",  # static destinations: only when given in the values
    "store.secret_access_key",  # the archiver's, from a Secret (DWSYNC_STORE__SECRET_ACCESS_KEY)
    "archive.secret_access_key",  # the backfill's, from a Secret (DWSYNC_ARCHIVE__SECRET_ACCESS_KEY)
}
PREFIX_NOT_IN_FILE = ("destinations.", "api.workspace_tokens")
# Keys whose default is none, shown with an example value in deploy/*.toml: a null in the values
# leaves them out of the file.
NONE_BY_DEFAULT = {"store.endpoint", "archive.endpoint"}
# The [kafka] keys the chart always renders (security settings) and deploy/archiver.toml and
# deploy/backfill.toml do not show (their [kafka] is the shared section deploy/ingest.toml shows
# in full).
KAFKA_SECURITY = {"kafka.security_protocol", "kafka.sasl_mechanism", "kafka.sasl_username", "kafka.ssl_ca_location",
                  "kafka.ssl_certificate_location", "kafka.ssl_key_location"}
# Keys the chart renders that the documentation does not show (valid: the services' structs
# have them).
EXTRA_ALLOWED = {
    "archiver": KAFKA_SECURITY,
    "backfill": KAFKA_SECURITY,
    "ingest": {"ingest.topics"},
    "uploader": {"handoff.fetch_queue_kbytes", "sync_config.store.partitions", "sync_config.store.replication_factor"},
    "control": {"http.shutdown_delay_ms", "http.shutdown_grace_ms", "telemetry.service_name", "telemetry.log_format",
                "kafka.client_id_prefix", "kafka.metadata_timeout_ms", "kafka.check_interval_ms",
                "kafka.security_protocol", "kafka.sasl_mechanism", "kafka.sasl_username", "kafka.ssl_ca_location",
                "kafka.ssl_certificate_location", "kafka.ssl_key_location", "store.status_topic"},
}


def keys(table, prefix=""):
    out = set()
    for k, v in table.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= keys(v, path + ".")
        elif isinstance(v, dict):
            out.add(path)  # an empty table, e.g. [ingest.topics]
        else:
            out.add(path)
    return out


def documented(text):
    """Keys of a documented TOML file, with the commented-out ones."""
    parsed = keys(tomllib.loads(text))
    optional, section = set(), ""
    for line in text.splitlines():
        m = re.match(r"^\[([a-z_.]+)\]", line)
        if m:
            section = m.group(1) + "."
            continue
        m = re.match(r"^#\s*([a-z_]+)\s*=", line)
        if m and not section.startswith("ingest.topics"):
            optional.add(section + m.group(1))
        m = re.match(r"^#\s*([a-z_]+):", line)  # "# sasl_password: a secret, ..."
        if m:
            optional.add(section + m.group(1))
    return parsed, optional


def main():
    rendered, root = Path(sys.argv[1]), Path(sys.argv[2])
    docs = {
        "ingest": (root / "deploy/ingest.toml").read_text(),
        "uploader": (root / "deploy/uploader.toml").read_text(),
        "archiver": (root / "deploy/archiver.toml").read_text(),
        "backfill": (root / "deploy/backfill.toml").read_text(),
    }
    control_md = (root / "docs/CONTROL.md").read_text()
    m = re.search(r"```toml\n(# control\.toml.*?)```", control_md, re.S)
    if m:
        docs["control"] = m.group(1)
    failed, seen = False, 0
    for doc in yaml.safe_load_all(rendered.read_text()):
        if not doc or doc.get("kind") not in ("ConfigMap", "Secret"):
            continue
        data = doc.get("data") or {}
        data.update(doc.get("stringData") or {})
        for name, text in data.items():
            if not name.endswith(".toml"):
                continue
            service = name[: -len(".toml")]
            seen += 1
            try:
                got = keys(tomllib.loads(text))
            except tomllib.TOMLDecodeError as err:
                print(f"{service}: the rendered TOML does not parse: {err}")
                failed = True
                continue
            if service not in docs:
                print(f"{service}: TOML parses ({len(got)} keys; no documented file to compare with)")
                continue
            want, optional = documented(docs[service])
            skip = lambda k: k in NOT_IN_FILE or k.startswith(PREFIX_NOT_IN_FILE)
            missing = sorted(k for k in want if not skip(k) and k not in got and k not in NONE_BY_DEFAULT)
            unknown = sorted(k for k in got if k not in want and k not in optional and k not in EXTRA_ALLOWED.get(service, set()))
            if missing or unknown:
                failed = True
                print(f"{service}: documented keys the chart does not render: {missing or 'none'}; "
                      f"rendered keys not documented: {unknown or 'none'}")
            else:
                print(f"{service}: TOML parses, {len(got)} keys, every documented key rendered")
    if seen == 0:
        print("no service config found in the rendered manifests")
        failed = True
    sys.exit(1 if failed else 0)


main()
