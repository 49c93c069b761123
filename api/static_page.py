"""A static HTML page served from memory: the file read once when the API starts, with its ETag and
Last-Modified, answered by an async route (no worker-thread hop, no file stat or read per request) and
304 Not Modified when the browser already holds it.

The public pages (/complaint, /beds, /city, /data, their Indonesian paths, /hospital-desk) hold no data
of their own: they are the same bytes until the next deploy, which restarts the API. The language is
chosen in the browser (api/static/public.js), so one page serves both languages.

Cache-Control: a browser or the city's proxy keeps a page a minute without asking, then asks again with
If-None-Match and gets a 304 of no body. Not longer: the page's scripts under /static/ are not
versioned, and a page must not stay out of step with them for long after a deploy."""

import hashlib
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

CACHE_CONTROL = "public, max-age=60"
HTML_TYPE = "text/html; charset=utf-8"
# the OpenAPI answers of a page's route
RESPONSES = {200: {"content": {"text/html": {}}}, 304: {"description": "the browser's copy is current (If-None-Match)"}}


class StaticPage:
    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'
        self.mtime = int(path.stat().st_mtime)
        self.last_modified = formatdate(self.mtime, usegmt=True)
        self.headers = {"ETag": self.etag, "Last-Modified": self.last_modified, "Cache-Control": CACHE_CONTROL}

    def fresh(self, request: Request) -> bool:
        """The browser's copy is this one: If-None-Match names our ETag (weak comparison, RFC 9110
        13.1.2), or, only when there is no If-None-Match, If-Modified-Since is not before the file."""
        match = request.headers.get("if-none-match")
        if match is not None:
            tags = [tag.strip().removeprefix("W/") for tag in match.split(",")]
            return "*" in tags or self.etag in tags
        since = request.headers.get("if-modified-since")
        if since is None:
            return False
        try:
            return int(parsedate_to_datetime(since).timestamp()) >= self.mtime
        except (TypeError, ValueError, OverflowError):
            return False

    def response(self, request: Request) -> Response:
        if self.fresh(request):
            return Response(status_code=304, headers=self.headers)
        return Response(self.body, media_type=HTML_TYPE, headers=self.headers)
