"""The one InfluxDB datasource every dashboard points at, by a fixed uid.

Provisioning (grafana/provisioning/datasources/influxdb.yaml) and `city grafana
sync` both create it under this uid, so the dashboards' references hold in
either deployment. Credentials come from the environment, never from a
dashboard.
"""

from typing import Any

DATASOURCE_UID = "city-influxdb"
DATASOURCE_NAME = "City InfluxDB"
DATASOURCE_TYPE = "influxdb"
DATASOURCE_REF = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}


def datasource_body(url: str, database: str, user: str = "", password: str = "",
                    token: str = "") -> dict[str, Any]:
    """The datasource as Grafana's HTTP API takes it (InfluxQL).

    With a token (InfluxDB 2.x/3.x v1 compatibility API) it is sent as an
    `Authorization: Token ...` header, as Grafana's InfluxQL mode expects.
    """
    body: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": url,
        "database": database,
        "user": user,
        "basicAuth": False,
        "isDefault": True,
        "jsonData": {"dbName": database, "httpMode": "POST", "timeInterval": "10s", "version": "InfluxQL"},
        "secureJsonData": {},
    }
    if password:
        body["secureJsonData"]["password"] = password
    if token:
        body["jsonData"]["httpHeaderName1"] = "Authorization"
        body["secureJsonData"]["httpHeaderValue1"] = f"Token {token}"
    return body
