"""compose.yaml, the Dockerfile and the nginx config agree with each other and with the
server (no Docker here: the files are parsed, and nginx checks its config with -t)."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from server.config import Settings
from tests.support.nginx import (
    COMPOSE_UPSTREAM,
    ROOT,
    SERVER_PARAMS,
    SITE,
    UPSTREAM_INCLUDE,
    check_config,
    nginx_binary,
    render,
    upstream_lines,
)
from tests.support.services import service_missing

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PINNED_TAG = re.compile(r"^[\w.-]*\d+\.\d+(\.\d+)?[\w.-]*$")  # 7.4.2-bookworm, 1.27-alpine


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: "" if v is None else str(v) for k, v in raw.items()}


def nodes() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if "ATELIER_NODE_ID" in env(s)}


def depends(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def instructions(word: str) -> list[str]:
    return [rest for w, rest in dockerfile() if w == word]


def command_words(value: str | list[str]) -> list[str]:
    """A Dockerfile/compose command, exec form (JSON list) or shell form, as words."""
    if isinstance(value, list):
        return value
    value = value.strip()
    if value.startswith("["):
        return list(yaml.safe_load(value))
    return shlex.split(value)


def image_command() -> list[str]:
    (cmd,) = instructions("CMD")
    entrypoint = instructions("ENTRYPOINT")
    return [*(command_words(entrypoint[-1]) if entrypoint else []), *command_words(cmd)]


def serve_port(words: list[str]) -> int:
    assert "serve" in words and any(w.endswith("atelier") for w in words), words
    return int(words[words.index("--port") + 1])


def node_command(service: dict[str, Any]) -> list[str]:
    return command_words(service["command"]) if "command" in service else image_command()


def upstream_servers() -> list[tuple[str, int, str]]:
    out = []
    for line in COMPOSE_UPSTREAM.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"server\s+([\w.-]+):(\d+)\s*(.*?);", line)
        assert m, f"unexpected line in {COMPOSE_UPSTREAM.name}: {line}"
        out.append((m[1], int(m[2]), m[3].strip()))
    return out


def site_listen_port() -> int:
    (port,) = re.findall(r"^\s*listen\s+(\d+)\s*;", SITE.read_text(), re.MULTILINE)
    return int(port)


# --- compose.yaml ↔ the nginx upstream file --------------------------------------------


def test_upstream_servers_are_the_node_services() -> None:
    servers = upstream_servers()
    assert sorted(host for host, _, _ in servers) == sorted(nodes()), (
        "one upstream server per node service, and no other"
    )
    for host, port, params in servers:
        assert port == serve_port(node_command(services()[host])), host
        assert params == SERVER_PARAMS, f"{host}: passive health differs from the tests'"
    assert len(nodes()) >= 2


def test_site_includes_the_upstream_file_compose_mounts() -> None:
    assert re.search(rf"^\s*include\s+{re.escape(UPSTREAM_INCLUDE)};", SITE.read_text(), re.M)
    assert "hash $atelier_hash_key consistent;" in SITE.read_text()


# --- the nodes --------------------------------------------------------------------------


def test_nodes_share_redis_postgres_and_the_secret() -> None:
    postgres = env(services()["postgres"])
    envs = {name: env(s) for name, s in nodes().items()}
    for name, e in envs.items():
        redis = urlsplit(e["ATELIER_REDIS_URL"])
        assert redis.scheme == "redis" and redis.hostname in services(), name
        db = urlsplit(e["ATELIER_DATABASE_URL"])
        assert db.scheme == "postgresql+psycopg", name
        assert db.hostname == "postgres" and db.username == postgres["POSTGRES_USER"], name
        assert db.path.lstrip("/") == postgres["POSTGRES_DB"], name
        assert e["ATELIER_JWT_SECRET"].startswith("${ATELIER_JWT_SECRET:?"), (
            f"{name}: the secret must come from the environment, and be required"
        )
    for key in ("ATELIER_REDIS_URL", "ATELIER_DATABASE_URL", "ATELIER_JWT_SECRET"):
        assert len({e[key] for e in envs.values()}) == 1, f"{key} differs between nodes"
    ids = [e["ATELIER_NODE_ID"] for e in envs.values()]
    assert len(set(ids)) == len(ids), f"node ids must be distinct: {ids}"
    migrate = env(services()["migrate"])
    assert migrate["ATELIER_DATABASE_URL"] == next(iter(envs.values()))["ATELIER_DATABASE_URL"]


def test_every_atelier_variable_is_a_setting() -> None:
    fields = set(Settings.model_fields)
    prefix = Settings.model_config.get("env_prefix", "")
    seen = {(f"compose {name}", k) for name, s in services().items() for k in env(s)}
    for rest in instructions("ENV"):
        seen |= {("Dockerfile", m) for m in re.findall(r"\b(ATELIER_\w+)=", rest)}
    checked = 0
    for where, key in seen:
        if key.startswith(prefix):
            checked += 1
            assert key[len(prefix) :].lower() in fields, f"{where}: {key} is not a setting"
    assert checked


def test_migrate_runs_once_before_the_nodes() -> None:
    migrate = services()["migrate"]
    words = " ".join(command_words(migrate["command"]))
    assert "atelier migrate" in words and "atelier seed-demo --if-empty" in words
    assert words.index("atelier migrate") < words.index("seed-demo")
    assert depends(migrate).get("postgres") == "service_healthy"
    assert migrate.get("restart", "no") == "no"
    for name, node in nodes().items():
        deps = depends(node)
        assert deps.get("migrate") == "service_completed_successfully", name
        assert deps.get("redis") == "service_healthy", name
        assert node.get("image") == migrate.get("image"), f"{name} runs another image"


def test_healthchecks_everywhere() -> None:
    for name, service in services().items():
        check = service.get("healthcheck") or {}
        if name == "migrate":  # one-shot: the nodes wait for it to complete instead
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for name, node in nodes().items():
        assert any("readyz" in w or "healthz" in w for w in node["healthcheck"]["test"]), name
    assert instructions("HEALTHCHECK") and "/healthz" in instructions("HEALTHCHECK")[0]


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = service.get("image")
        assert image, f"{name}: name the image (and its tag), even when it is built"
        if "@sha256:" in image:
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if "build" not in service:
            assert PINNED_TAG.match(tag), f"{name}: {image} is not pinned to a version"


def test_nginx_publishes_8000_and_mounts_the_repo_config() -> None:
    nginx = services()["nginx"]
    assert f"8000:{site_listen_port()}" in [str(p) for p in nginx["ports"]]
    mounts = {}
    for volume in nginx["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[(ROOT / source).resolve()] = target
    assert re.fullmatch(r"/etc/nginx/conf\.d/[\w.-]+\.conf", mounts[SITE.resolve()])
    assert mounts[COMPOSE_UPSTREAM.resolve()] == f"/etc/nginx/{UPSTREAM_INCLUDE}"
    assert {n: "service_healthy" for n in nodes()}.items() <= depends(nginx).items()
    for name, service in services().items():
        if name == "grafana":  # the operators' dashboard: the host's loopback only
            assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", []))
        elif name != "nginx":
            assert not service.get("ports"), f"{name} must be reached through nginx only"


def test_postgres_keeps_its_data_in_a_volume() -> None:
    volumes = [v.split(":") for v in services()["postgres"]["volumes"]]
    assert ["pgdata", "/var/lib/postgresql/data"] in [v[:2] for v in volumes]
    assert "pgdata" in compose()["volumes"]


# --- the image --------------------------------------------------------------------------


def test_dockerfile_base_user_and_command() -> None:
    *builders, base = [f.split()[0] for f in instructions("FROM")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    for stage in builders:  # the client build stage: pinned too
        assert re.fullmatch(r"node:\d+\.\d+\.\d+-bookworm-slim", stage), stage
    users = instructions("USER")
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    words = image_command()
    assert words[:2] == ["atelier", "serve"], words
    assert words[words.index("--host") + 1] == "0.0.0.0"
    ports = {port for _, port, _ in upstream_servers()}
    assert ports == {serve_port(words)}, "nginx's upstream port is the one the image serves"
    assert str(serve_port(words)) in " ".join(instructions("EXPOSE")).split()
    assert any("pip install ." in rest for rest in instructions("RUN"))
    # The web client is built in the image and served from ATELIER_CLIENT_DIR.
    assert any("npm run build" in rest for rest in instructions("RUN"))
    assert "ATELIER_CLIENT_DIR=/app/client" in " ".join(instructions("ENV"))


def test_dockerignore_keeps_the_context_small() -> None:
    entries = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    for required in (".venv", "node_modules", "data", ".git", "tests/interop/node_modules"):
        assert required in entries, required
    assert "bench/peers" in entries or "bench" in entries


# --- nginx -t on the two variants of the one site config ---------------------------------


@pytest.mark.parametrize("variant", ["tests", "compose"])
def test_nginx_config_syntax(variant: str, tmp_path: Path) -> None:
    if nginx_binary() is None:
        service_missing("nginx not installed")
    if variant == "tests":
        main = render(
            tmp_path,
            upstream=upstream_lines([("127.0.0.1", 18001), ("127.0.0.1", 18002)]),
            listen="127.0.0.1:18000",
        )
    else:
        # The compose host names do not resolve here; nginx -t resolves them, so map
        # them to loopback and keep everything else (ports, parameters, listen) as is.
        hosts = {host for host, _, _ in upstream_servers()}
        text = COMPOSE_UPSTREAM.read_text()
        for host in hosts:
            text = re.sub(rf"\bserver\s+{re.escape(host)}:", "server 127.0.0.1:", text)
        main = render(tmp_path, upstream=text, listen=None)
    result = check_config(tmp_path, main)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
