"""Every HTML page of the API answers with the Content-Security-Policy and the anti-framing, no-referrer and
no-sniff headers; every other answer (JSON, CSV, errors) with nosniff. The pages are found by walking the
app's routes, not listed by hand, so a new page cannot be missed. (That the pages still work under the
CSP is checked in Chromium by each page's own test: tests/api/browser.py fails a test on a CSP violation.)"""

import datetime as dt

from api import security_headers
from api.routes.control_room import STATIC

# pages that must be among those found (the walk must not silently find nothing)
KNOWN_PAGES = {"/complaint", "/pengaduan", "/beds", "/tempat-tidur", "/city", "/kota", "/data", "/data-terbuka",
               "/hospital-desk", "/control-room", "/control-room/kpis", "/control-room/moderation",
               "/control-room/report"}


def _routes(routes):
    """Every route, also those of included routers (FastAPI 0.165 keeps an included router whole)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        else:
            yield route


def _answers(api, paths):
    """path -> the answer's headers (the body is not read: an event stream would not end)."""
    found = {}
    with api.client() as c:
        for path in paths:
            with c.stream("GET", path) as answer:
                found[path] = (answer.status_code, answer.headers)
    return found


def test_every_html_page_answers_with_the_csp_and_the_security_headers(api):
    app = api.server.config.app
    paths = sorted({r.path for r in _routes(app.routes)
                    if "{" not in r.path and "GET" in (getattr(r, "methods", None) or ())})
    paths += sorted("/static/" + p.name for p in STATIC.glob("*.html"))  # the page files themselves
    answers = _answers(api, paths)

    html = {p: h for p, (status, h) in answers.items() if h.get("content-type", "").startswith("text/html")}
    assert set(html) >= KNOWN_PAGES, f"pages not answered as HTML: {KNOWN_PAGES - set(html)}"
    assert len([p for p in html if p.startswith("/static/")]) >= 9
    for path, headers in html.items():
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["referrer-policy"] == "no-referrer", path
        if path in security_headers.DOCS_PATHS:  # Swagger UI / ReDoc: CDN and inline script
            assert "content-security-policy" not in headers, path
            continue
        csp = headers["content-security-policy"]
        assert csp == security_headers.CSP, path
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
        assert directives["connect-src"] == "'self'" and directives["base-uri"] == "'self'"
    assert "unsafe" not in security_headers.CSP

    # the JSON, CSV and error answers are not sniffed either
    for path, (status, headers) in answers.items():
        assert headers["x-content-type-options"] == "nosniff", (path, status)
    assert any(h.get("content-type", "").startswith("application/json") for _, h in answers.values())
    assert answers["/alerts/stream"][0] == 401  # the event stream is walked too (a clean refusal, no key)
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    status, csv = _answers(api, [f"/opendata/download/water-flow_lps/{month}.csv"]).popitem()[1]
    assert status == 200 and csv["content-type"].startswith("text/csv") and csv["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in csv


def test_a_304_of_a_page_keeps_nosniff(api):
    with api.client() as c:
        page = c.get("/complaint")
        again = c.get("/complaint", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.headers["x-content-type-options"] == "nosniff"
