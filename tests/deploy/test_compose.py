"""docker-compose.yml and .env.example: valid Compose (checked by Debian's
docker-compose, no engine needed), every setting documented and passed on,
no secret committed, scalable ingest."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from telemetry_shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
APP_SERVICES = ("ingest", "analytics", "api", "rollup", "simulator")
PERIODIC_JOBS = ("rollup",)  # exits on failure, so its restarts are its health
SECRETS = ("INGEST_MQTT_PASSWORD", "ANALYTICS_MQTT_PASSWORD", "API_MQTT_PASSWORD", "INFLUXDB_ADMIN_PASSWORD",
           "CITY_INFLUX_PASSWORD", "GRAFANA_INFLUX_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "CITIZEN_CONTACT_KEY")
# The settings that hold secrets, and which service gets which (each only what it uses).
SECRET_SETTINGS = {"CITY_MQTT_PASSWORD", "CITY_INFLUX_PASSWORD", "CITY_INFLUX_TOKEN", "CITY_API_TOKEN",
                   "CITY_GRAFANA_TOKEN", "CITY_GRAFANA_PASSWORD", "CITY_API_NOTIFY_RULES",
                   "CITY_API_CITIZEN_CONTACT_KEY", "CITY_API_CITIZEN_CONTACT_OLD_KEYS"}
INFLUX_SECRETS = {"CITY_INFLUX_PASSWORD", "CITY_INFLUX_TOKEN"}
SECRETS_OF = {"ingest": {"CITY_MQTT_PASSWORD"} | INFLUX_SECRETS,
              "analytics": {"CITY_MQTT_PASSWORD"} | INFLUX_SECRETS,
              "api": {"CITY_MQTT_PASSWORD", "CITY_API_NOTIFY_RULES", "CITY_API_CITIZEN_CONTACT_KEY",
                      "CITY_API_CITIZEN_CONTACT_OLD_KEYS"} | INFLUX_SECRETS,
              "rollup": INFLUX_SECRETS,
              "simulator": {"CITY_API_TOKEN"}}  # its own key to register devices through the API


TLS_NAME = "mqtt.tanjungpinang.example"


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if not path:
        pytest.fail("`docker-compose` is not installed: apt-get install docker-compose", pytrace=False)
    return path


def env_names() -> set[str]:
    return {f"CITY_{name.upper()}" for name in Settings.model_fields}


def example_lines() -> list[str]:
    return ENV_EXAMPLE.read_text().splitlines()


def documented() -> set[str]:
    """Variables given a line of their own in .env.example, set or commented out."""
    return {m.group(1) for line in example_lines() if (m := re.match(r"#? ?([A-Z][A-Z0-9_]*)=", line))}


def run_config(tmp_path: Path, env_text: str, *args: str) -> subprocess.CompletedProcess:
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text(env_text)
    return subprocess.run([docker_compose(), *args, "config"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


def mounts(service: dict) -> dict[str, str]:
    """target -> source of a service's volumes (docker-compose prints them as "source:target[:mode]")."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        out[target] = source
    return out


def filled_env() -> str:
    text = ENV_EXAMPLE.read_text()
    for name in SECRETS:
        text = re.sub(rf"^{name}=$", f"{name}=test-{name.lower()}-0123456789", text, flags=re.M)
    return re.sub(r"^CITY_MQTT_TLS_SERVER_NAME=$", f"CITY_MQTT_TLS_SERVER_NAME={TLS_NAME}", text, flags=re.M)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    """The compose file as docker-compose resolves it with .env.example's secrets filled in."""
    done = run_config(tmp_path_factory.mktemp("compose"), filled_env(), "--profile", "simulator")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_valid_and_has_every_service(resolved: dict) -> None:
    assert set(resolved["services"]) == {"broker-init", "mosquitto", "influxdb", "grafana", "proxy", *APP_SERVICES}
    assert resolved["services"]["simulator"]["profiles"] == ["simulator"]
    assert resolved["services"]["proxy"]["profiles"] == ["proxy"]


def test_env_example_as_committed_has_no_secrets_so_compose_refuses_it(tmp_path: Path) -> None:
    for line in example_lines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#") and re.search(r"PASSWORD|TOKEN|SECRET", name):
            assert value == "", f"{name} has a value in .env.example"
    done = run_config(tmp_path, ENV_EXAMPLE.read_text())
    assert done.returncode != 0
    assert re.search(r"set \w+_PASSWORD in \.env", done.stderr), done.stderr


@pytest.mark.parametrize(("line", "message"), [
    ("CITY_INGEST_WORKERS=lots", "replicas"),
    ("MQTT_TLS_PORT=8883:8883/udp:x", "mosquitto.ports"),
    ("GRAFANA_PORT=${GRAFANA_PORT", "grafana.ports"),
    ("API_PORT=" + "9" * 5000, "Invalid published port"),
])
def test_a_hostile_env_file_is_refused_naming_the_problem(tmp_path: Path, line: str, message: str) -> None:
    done = run_config(tmp_path, filled_env() + line + "\n")
    assert done.returncode != 0 and message in done.stderr, done.stderr[:300]


def test_every_setting_is_documented_in_env_example() -> None:
    missing = env_names() - documented()
    assert not missing, f"document these in .env.example: {sorted(missing)}"


def test_every_variable_the_compose_file_reads_is_documented() -> None:
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert not used - documented(), f"document these in .env.example: {sorted(used - documented())}"


def test_every_setting_but_the_secrets_reaches_every_python_service(resolved: dict) -> None:
    for service in APP_SERVICES:
        environment = resolved["services"][service]["environment"]
        missing = env_names() - SECRET_SETTINGS - set(environment)
        assert not missing, f"{service} misses {sorted(missing)}"


def test_each_service_gets_only_the_secrets_it_uses(resolved: dict) -> None:
    assert env_names() >= SECRET_SETTINGS
    for service in APP_SERVICES:
        environment = resolved["services"][service]["environment"]
        given = {name for name in SECRET_SETTINGS if name in environment and environment[name] not in ("", None)}
        extra = given - SECRETS_OF[service]
        assert not extra, f"{service} gets secrets it does not use: {sorted(extra)}"
    assert resolved["services"]["rollup"]["environment"]["CITY_MQTT_PASSWORD"] == ""  # InfluxDB only


def test_the_simulator_holds_no_secret_and_no_file_of_the_services(resolved: dict) -> None:
    simulator = resolved["services"]["simulator"]
    text = yaml.safe_dump(simulator)
    for name in SECRETS:
        assert f"test-{name.lower()}-0123456789" not in text, f"the simulator gets {name}"
    # not the registry, alerts, keys, broker auth: its own volume, and the broker's CA certificate (public)
    assert mounts(simulator) == {"/var/lib/city": "simulator-data", "/etc/city-ca": "broker-ca"}
    # the rollup job reads and writes InfluxDB, and renders open-data files into the API's download cache only
    assert mounts(resolved["services"]["rollup"]) == {"/var/lib/city/opendata-cache": "opendata-cache"}
    assert mounts(resolved["services"]["api"])["/var/lib/city/opendata-cache"] == "opendata-cache"


def test_api_and_grafana_listen_on_loopback_unless_told_otherwise(resolved: dict, tmp_path: Path) -> None:
    for name, port in (("api", 8000), ("grafana", 3000)):
        assert resolved["services"][name]["ports"] == [f"127.0.0.1:{port}:{port}/tcp"], name
    done = run_config(tmp_path, filled_env() + "API_BIND=0.0.0.0\n")
    assert yaml.safe_load(done.stdout)["services"]["api"]["ports"] == ["0.0.0.0:8000:8000/tcp"]
    proxy = resolved["services"]["proxy"]
    assert re.search(r":\d+\.\d+\.\d+$", proxy["image"]) and proxy["depends_on"].keys() == {"api", "grafana"}
    assert mounts(proxy)["/etc/caddy/Caddyfile"].endswith("deploy/caddy/Caddyfile")


@pytest.mark.parametrize("tls", ["internal", "ops@tanjungpinang.example", "/certs/city.crt /certs/city.key"])
def test_the_proxy_config_is_valid_caddy_for_each_kind_of_certificate(tls: str) -> None:
    caddy = shutil.which("caddy")
    if not caddy:
        pytest.fail("`caddy` is not installed: apt-get install caddy", pytrace=False)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "API_DOMAIN": "api.city.example",
           "GRAFANA_DOMAIN": "grafana.city.example", "PROXY_TLS": tls}
    done = subprocess.run([caddy, "adapt", "--config", str(ROOT / "deploy" / "caddy" / "Caddyfile"),
                           "--adapter", "caddyfile"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    routes = config["apps"]["http"]["servers"]["srv0"]["routes"]
    hosts = {host for route in routes for match in route.get("match", []) for host in match.get("host", [])}
    assert hosts == {"api.city.example", "grafana.city.example"}
    upstreams = re.findall(r'"dial":\s*"([^"]+)"', done.stdout)
    assert set(upstreams) == {"api:8000", "grafana:3000"}


def test_each_service_logs_in_with_its_own_password(resolved: dict) -> None:
    services = resolved["services"]
    assert services["ingest"]["environment"]["CITY_MQTT_PASSWORD"] == "test-ingest_mqtt_password-0123456789"
    assert services["analytics"]["environment"]["CITY_MQTT_PASSWORD"] == "test-analytics_mqtt_password-0123456789"
    assert services["api"]["environment"]["CITY_MQTT_PASSWORD"] == "test-api_mqtt_password-0123456789"
    assert services["influxdb"]["environment"]["INFLUXDB_USER_PASSWORD"] == \
        services["ingest"]["environment"]["CITY_INFLUX_PASSWORD"]


def test_ingest_scales_under_fixed_identities(resolved: dict) -> None:
    ingest = resolved["services"]["ingest"]
    assert "container_name" not in ingest and "ports" not in ingest, "a fixed name or host port stops --scale"
    assert ingest["command"][:4] == ["python", "-m", "deploy.lease", "ingest"]
    assert ingest["deploy"]["replicas"] == 2 and ingest["environment"]["CITY_INGEST_WORKERS"] == "2"


def test_ingest_workers_from_env_set_the_replicas_and_the_group(tmp_path: Path) -> None:
    done = run_config(tmp_path, filled_env() + "CITY_INGEST_WORKERS=3\n")
    ingest = yaml.safe_load(done.stdout)["services"]["ingest"]
    assert ingest["deploy"]["replicas"] == 3 and ingest["environment"]["CITY_INGEST_WORKERS"] == "3"


def test_restart_policies_health_checks_and_named_volumes(resolved: dict) -> None:
    for name, service in resolved["services"].items():
        if name in ("broker-init", "simulator"):
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        if name not in PERIODIC_JOBS:
            assert service["healthcheck"]["test"], name
    named = set(resolved["volumes"])
    assert {"city-data", "broker-auth", "mosquitto-data", "influxdb-data", "grafana-data"} <= named
    for name in ("mosquitto", "influxdb", "grafana", "ingest", "api"):
        sources = mounts(resolved["services"][name]).values()
        assert any(source in named for source in sources), f"{name} keeps its data in no named volume"


def test_third_party_images_are_pinned(resolved: dict) -> None:
    for name in ("mosquitto", "influxdb", "grafana"):
        image = resolved["services"][name]["image"]
        assert re.search(r":\d+\.\d+\.\d+$", image), f"{name}: pin an exact version, not {image}"


def test_grafana_gets_every_variable_its_provisioning_reads(resolved: dict) -> None:
    provisioning = ROOT / "grafana" / "provisioning"
    wanted = set()
    for path in provisioning.rglob("*.yaml"):
        wanted |= set(re.findall(r"\$\{([A-Z_]+)\}", path.read_text()))
    grafana = resolved["services"]["grafana"]
    assert wanted and wanted <= set(grafana["environment"])
    targets = mounts(grafana)
    assert targets["/etc/grafana/provisioning"].endswith("grafana/provisioning")
    provider = yaml.safe_load((provisioning / "dashboards" / "city.yaml").read_text())["providers"][0]
    assert targets[provider["options"]["path"]].endswith("grafana/dashboards")


def test_the_broker_runs_the_committed_config_and_its_rebuilt_dynamic_security_file(resolved: dict) -> None:
    services = resolved["services"]
    broker = mounts(services["mosquitto"])
    assert broker["/mosquitto/config/mosquitto.conf"].endswith("deploy/mosquitto/mosquitto.conf")
    assert broker["/mosquitto/auth"] == "broker-auth" == mounts(services["broker-init"])["/mosquitto/auth"]
    rw = [v for v in services["mosquitto"]["volumes"] if isinstance(v, str) and v.startswith("broker-auth:")]
    assert rw == ["broker-auth:/mosquitto/auth:rw"]  # the plugin saves the API's device changes there
    assert "/mosquitto/auth" not in mounts(services["api"])  # the API changes the broker over MQTT only
    assert mounts(services["broker-init"])["/var/lib/city"] == "city-data"  # it reads the registry
    data = next(v for v in services["mosquitto"]["volumes"] if isinstance(v, dict))
    assert data["source"] == "mosquitto-data" and data["volume"]["nocopy"] is True


def test_devices_reach_the_broker_over_tls_only(resolved: dict, tmp_path: Path) -> None:
    """Production: the plain listener (services only) is not published on the host; the API's
    device admin and the simulated devices go over TLS, checking the broker with the city's CA."""
    services = resolved["services"]
    assert [p["target"] for p in services["mosquitto"]["ports"]] == [8883]
    for name in ("api", "simulator"):
        env = services[name]["environment"]
        assert env["CITY_DEVICE_CA_FILE"] == "/etc/city-ca/ca.crt" and env["CITY_MQTT_TLS_SERVER_NAME"] == TLS_NAME
        assert "broker-ca:/etc/city-ca:ro" in services[name]["volumes"], name  # read-only
    assert services["api"]["environment"]["CITY_DEVICE_ADMIN_MQTT_TLS"] == "true"
    assert mounts(services["broker-init"])["/city-ca"] == "broker-ca"
    done = run_config(tmp_path, filled_env().replace(f"CITY_MQTT_TLS_SERVER_NAME={TLS_NAME}", ""))
    assert done.returncode != 0 and "set CITY_MQTT_TLS_SERVER_NAME in .env" in done.stderr, done.stderr[:300]


CLUSTER = ROOT / "deploy" / "cluster" / "docker-compose.cluster.yml"


def test_the_cluster_profile_is_valid_compose_with_two_emqx_nodes_and_the_workers_on_them(tmp_path: Path) -> None:
    """docker-compose config of the production file with the cluster override (issue 22, past one machine)."""
    (tmp_path / "deploy" / "cluster").mkdir(parents=True)
    shutil.copy(CLUSTER, tmp_path / "deploy" / "cluster" / CLUSTER.name)
    env = filled_env() + "\nEMQX_COOKIE=test-cookie-0123456789\nEMQX_DASHBOARD_PASSWORD=test-dashboard-0123\n" \
        "CITY_ANALYTICS_SHARDS=2\n"
    done = run_config(tmp_path, env, "-f", "docker-compose.yml", "-f", f"deploy/cluster/{CLUSTER.name}",
                      "--profile", "cluster")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    nodes = {name: services[name] for name in ("emqx1", "emqx2")}
    seeds = {node["environment"]["EMQX_CLUSTER__STATIC__SEEDS"] for node in nodes.values()}
    assert len(seeds) == 1  # one cluster: both nodes know both
    seed_text = next(iter(seeds))
    assert all(node["environment"]["EMQX_NODE__NAME"] in seed_text for node in nodes.values())
    assert services["ingest"]["environment"]["CITY_MQTT_HOST"] == "emqx1.city.internal"
    assert services["analytics"]["environment"]["CITY_MQTT_HOST"] == "emqx2.city.internal"
    assert services["analytics"]["deploy"]["replicas"] == 2 and services["analytics"]["environment"][
        "CITY_ANALYTICS_SHARDS"] == "2"
    # Without the cluster's secrets it refuses, naming them.
    refused = run_config(tmp_path, filled_env(), "-f", "docker-compose.yml", "-f", f"deploy/cluster/{CLUSTER.name}",
                         "--profile", "cluster")
    assert refused.returncode != 0 and "EMQX_COOKIE" in refused.stderr
