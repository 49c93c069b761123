"""`city apikey`: a key made on the command line works on the live API at
once, revoking it stops it; bad input gets a clear error and exit code 2."""

import json

import pytest
from typer.testing import CliRunner

from telemetry_cli.main import app

runner = CliRunner()


def city(api, *args):
    return runner.invoke(app, ["apikey", *args], env={"CITY_API_DB_PATH": str(api.settings.api_db_file)})


def test_create_use_list_revoke(api):
    made = city(api, "create", "Siti Rahma", "--role", "operator", "--json")
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert key["role"] == "operator" and key["key"].startswith(f"city_{key['id']}_")
    with api.client() as c:
        headers = {"Authorization": f"Bearer {key['key']}"}
        assert c.get("/alerts", headers=headers).status_code == 200
        listed = json.loads(city(api, "list", "--json").output)
        assert key["id"] in [k["id"] for k in listed["data"]] and key["key"] not in made.output.replace(
            key["key"], "", 1)  # printed once
        table = city(api, "list")
        assert "Siti Rahma" in table.output and key["key"] not in table.output
        revoked = city(api, "revoke", key["id"])
        assert revoked.exit_code == 0
        assert c.get("/alerts", headers=headers).status_code == 401
    assert city(api, "revoke", key["id"]).exit_code == 3  # EXIT_NOT_FOUND, as in every command


def test_plain_output_shows_the_key_once(api):
    made = city(api, "create", "control-room-wall", "--role", "operator")
    assert made.exit_code == 0 and made.output.count("city_") == 1 and "not shown again" in made.output


@pytest.mark.parametrize("args,message", [
    (["create", "ana", "--role", "mayor"], "bad role"),
    (["create", "x" * 200, "--role", "admin"], "bad name"),
    (["create", "rm -rf /; <script>", "--role", "admin"], "bad name"),
    (["create", "", "--role", "admin"], "bad name"),
    (["revoke", "../../etc"], "bad key id"),
    (["revoke", "0" * 1000], "bad key id"),
])
def test_bad_input_is_refused_clearly(api, args, message):
    result = city(api, *args)
    assert result.exit_code == 2 and message in result.output, result.output
