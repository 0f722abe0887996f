"""Prometheus and Grafana in compose.yaml agree with deploy/ and with the nodes (no Docker
here: the files are parsed). That every dashboard expression names a metric a node
exports is checked against a real scrape in tests/integration/test_metrics.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_compose import env, nodes, services
from tests.support.nginx import ROOT

DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "atelier.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "atelier.yaml"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host path (resolved) of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            out[target] = str((ROOT / source).resolve())
    return out


def test_prometheus_scrapes_each_node_on_its_metrics_listener() -> None:
    config = load(PROMETHEUS)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["atelier"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    expected = set()
    for name, node in nodes().items():
        e = env(node)
        assert e.get("ATELIER_METRICS_HOST") == "0.0.0.0", f"{name}: listen on the network"
        expected.add(f"{name}:{int(e['ATELIER_METRICS_PORT'])}")
    assert targets == expected, "one target per node service, at its metrics port"
    # Scraped directly, never through the balancer (which would answer for any node).
    assert not any(t.startswith("nginx") for t in targets)
    for name, node in nodes().items():
        assert not node.get("ports"), f"{name}: the metrics port must not be published"


def test_compose_mounts_the_repo_configs_read_only() -> None:
    prometheus = services()["prometheus"]
    assert mounts(prometheus)["/etc/prometheus/prometheus.yml"] == str(PROMETHEUS.resolve())
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = services()["grafana"]
    got = mounts(grafana)
    assert got["/etc/grafana/provisioning"] == str((GRAFANA / "provisioning").resolve())
    dashboards_in = load(PROVIDERS)["providers"][0]["options"]["path"]
    assert got[dashboards_in] == str(DASHBOARD.parent.resolve())
    for service in (prometheus, grafana):
        for volume in service["volumes"]:
            if volume.startswith("./"):
                assert volume.endswith(":ro"), volume
    for volume in ("prometheus-data", "grafana-data"):
        assert volume in yaml.safe_load((ROOT / "compose.yaml").read_text())["volumes"]
    # Grafana's admin password comes from the environment, and is required.
    password = env(grafana)["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${") and ":?" in password
    assert env(grafana)["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_grafana_datasource_is_the_compose_prometheus() -> None:
    (source,) = load(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert source["uid"] and source["isDefault"] is True
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert ds["current"]["value"] == source["uid"], "the dashboard opens on this datasource"


def test_dashboard_panels_read_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 20
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].strip(), panel["title"]
            assert 'instance=~"$instance"' in target["expr"], target["expr"]
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24
