"""The open-data catalogue read by a real CKAN client (ckanapi's RemoteCKAN, as a harvester would) and as
DCAT (JSON-LD parsed by rdflib) against the live API on real influxd."""

import time

import ckanapi
import pytest
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF

from tests.api.opendata_seed import HOUR_MS, readings, roll_up, write_readings

CC_BY = URIRef("https://creativecommons.org/licenses/by/4.0/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")


@pytest.fixture
def seeded(api):
    now = int(time.time() * 1000)
    start, end = (now // HOUR_MS - 4) * HOUR_MS, (now // HOUR_MS - 1) * HOUR_MS
    lines = [line for n in range(4) for line in readings(
        "water", "flow_lps", f"wtr-{n:04d}", "bukit-bestari", start, end, 600_000, 2.0 + n)]
    lines += [line for n in range(4) for line in readings(  # a closed metric: must never show
        "building", "co2_ppm", f"bld-{n:04d}", "bukit-bestari", start, end, 600_000, 900.0, extra="temperature_c=27.0")]
    write_readings(api.services.influx, lines)
    roll_up(api.services.influx, start, end)
    return api


def test_a_ckan_client_lists_reads_and_searches_the_catalogue(seeded):
    api = seeded
    portal = ckanapi.RemoteCKAN(api.url, user_agent="city-test-harvester/1.0")
    names = portal.action.package_list()
    assert "water-flow_lps" in names and "complaints-daily" in names and "building-temperature_c" in names
    assert "building-co2_ppm" not in names and "building-occupancy" not in names  # closed by default
    package = portal.action.package_show(id="water-flow_lps")
    assert package["name"] == "water-flow_lps" and package["license_id"] == "cc-by"
    assert package["title"] == package["title_translated"]["id"]  # the profile's default language first
    assert "per wilayah dan jam" in package["title_translated"]["id"]
    assert "per district and hour" in package["title_translated"]["en"]
    assert package["organization"]["name"] == package["owner_org"] == "city"
    extras = {e["key"]: e["value"] for e in package["extras"]}
    assert extras["publication_mode"] == "aggregated" and extras["k_min_contributors"] == "3"
    assert extras["frequency"] == "PT1H" and extras["temporal_start"].endswith("Z")
    formats = {r["format"] for r in package["resources"]}
    assert formats == {"CSV", "JSON", "JSON_LD"}  # JSON_LD: NGSI-LD (api/opendata/ngsild.py)
    csv_url = next(r["url"] for r in package["resources"] if r["format"] == "CSV")
    with api.client() as client:
        answer = client.get(csv_url.removeprefix(api.url))
    assert answer.status_code == 200, answer.text
    lines = answer.text.strip().splitlines()
    assert lines[0] == "time,district,value,min,max,sum,devices,readings"
    assert len(lines) == 4 and all(",bukit-bestari,3.5,2,5,14,4,24" in line for line in lines[1:])

    found = portal.action.package_search(q="flow", rows=5)
    assert "water-flow_lps" in [p["name"] for p in found["results"]]
    page = portal.action.package_search(rows=3, start=0, sort="name asc")
    assert page["count"] == len(names) and [p["name"] for p in page["results"]] == sorted(names)[:3]
    assert portal.action.package_search(fq="res_format:CSV", rows=1000)["count"] >= 1
    assert portal.action.status_show()["ckan_version"].startswith("2.")
    assert portal.action.organization_list() == ["city"]
    assert portal.action.license_list()[0]["id"] == "cc-by"

    with pytest.raises(ckanapi.NotFound):
        portal.action.package_show(id="building-co2_ppm")
    with pytest.raises(ckanapi.NotFound):
        portal.action.package_show(id="no-such-dataset")
    with pytest.raises(ckanapi.ValidationError):
        portal.action.package_search(rows=10**9)
    with pytest.raises(ckanapi.ValidationError):
        portal.action.package_list(limit=-1)
    with pytest.raises(ckanapi.SearchQueryError):
        portal.action.package_search(fq="description:secret")
    with pytest.raises(ckanapi.NotAuthorized):
        portal.action.package_create(name="mine")


def test_the_versioned_path_and_get_only_clients_work_too(seeded):
    api = seeded
    versioned = ckanapi.RemoteCKAN(api.url)
    versioned.base_url = "api/3/action/"  # what CKAN documents; ckanapi's default is api/action/
    for portal in (versioned, ckanapi.RemoteCKAN(api.url, get_only=True)):
        assert "water-flow_lps" in portal.action.package_list()
        assert portal.action.package_show(id="water-flow_lps")["num_resources"] >= 2
    with api.client() as client:
        answer = client.get("/api/3/action/no_such_action")
        assert answer.status_code == 400
        assert answer.json()["success"] is False and answer.json()["error"]["__type"] == "Bad Request"
        answer = client.post("/api/3/action/package_show", content=b"{not json")
        assert answer.status_code == 400 and answer.json()["success"] is False
        answer = client.get("/api/3/action/package_show", params={"id": "x" * 5000})
        assert answer.status_code == 404 and answer.json()["error"]["__type"] == "Not Found Error"


def _texts(graph: Graph, subject: URIRef, predicate: URIRef) -> dict[str, str]:
    return {o.language: str(o) for o in graph.objects(subject, predicate) if isinstance(o, Literal)}


def test_the_dcat_catalogue_has_dcat_ap_mandatory_and_recommended_properties(seeded):
    api = seeded
    with api.client() as client:
        answer = client.get("/opendata/catalog.jsonld")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/ld+json")
    graph = Graph().parse(data=answer.text, format="json-ld")
    catalogs = list(graph.subjects(RDF.type, DCAT.Catalog))
    assert len(catalogs) == 1
    catalog = catalogs[0]
    # DCAT-AP Catalogue: mandatory dataset, description, publisher, title
    assert set(_texts(graph, catalog, DCTERMS.title)) == {"id", "en"}
    assert set(_texts(graph, catalog, DCTERMS.description)) == {"id", "en"}
    publisher = graph.value(catalog, DCTERMS.publisher)
    assert (publisher, RDF.type, FOAF.Agent) in graph and _texts(graph, publisher, FOAF.name)
    found = list(graph.objects(catalog, DCAT.dataset))
    ids = {str(graph.value(d, DCTERMS.identifier)) for d in found}
    assert "water-flow_lps" in ids and "complaints-daily" in ids
    assert not ids & {"building-co2_ppm", "building-occupancy"}
    for dataset in found:
        # DCAT-AP Dataset: mandatory description and title (here in both languages), recommended the rest
        assert (dataset, RDF.type, DCAT.Dataset) in graph
        assert set(_texts(graph, dataset, DCTERMS.title)) == {"id", "en"}, dataset
        assert set(_texts(graph, dataset, DCTERMS.description)) == {"id", "en"}, dataset
        assert graph.value(dataset, DCTERMS.license) == CC_BY
        assert graph.value(dataset, DCTERMS.publisher) is not None
        assert graph.value(dataset, DCTERMS.accrualPeriodicity) is not None
        assert graph.value(dataset, DCTERMS.spatial) is not None
        assert graph.value(dataset, DCAT.contactPoint) is not None
        assert set(_texts(graph, dataset, DCAT.keyword)) == {"id", "en"}
        for distribution in graph.objects(dataset, DCAT.distribution):
            # DCAT-AP Distribution: mandatory accessURL
            assert isinstance(graph.value(distribution, DCAT.accessURL), URIRef)
            assert isinstance(graph.value(distribution, DCAT.downloadURL), URIRef)
            assert str(graph.value(distribution, DCAT.mediaType)).startswith("http://www.iana.org/assignments/")
            assert graph.value(distribution, DCTERMS.license) == CC_BY
    flow = next(d for d in found if str(graph.value(d, DCTERMS.identifier)) == "water-flow_lps")
    period = graph.value(flow, DCTERMS.temporal)
    assert graph.value(period, DCAT.startDate) is not None and graph.value(period, DCAT.endDate) is not None
    assert str(graph.value(flow, DCTERMS.accrualPeriodicity)).endswith("/frequency/HOURLY")
    assert len(list(graph.objects(flow, DCAT.distribution))) >= 2
