"""Security headers on every answer, in one place (an ASGI middleware, so the pages served from memory,
the FileResponse pages, /static/*.html and the JSON/CSV answers are all covered).

Every answer: `X-Content-Type-Options: nosniff` (a JSON or CSV body is never sniffed into HTML or script).
An HTML answer also gets a Content-Security-Policy allowing only what the pages load: their scripts,
styles, the vendored Leaflet and Chart.js and the i18n catalogues, all same-origin under /static/
(the maps draw vector shapes on a canvas, no tile server). No inline script, no inline style, no eval:
the pages have none (scripts and styles are files; Leaflet and Chart.js set styles through the DOM,
which CSP does not restrict). `blob:` images: the moderation queue shows a complaint's photo fetched
with the staff key as a blob URL. fetch and the control room's event stream are same-origin
(connect-src 'self'). The page cannot be framed (frame-ancestors 'none' and X-Frame-Options: DENY)
and sends no Referer (a complaint's tracking code can be in the page's URL: /complaint?code=...).

FastAPI's own /docs and /redoc load Swagger UI / ReDoc from a CDN with an inline script: they get the
headers but not this CSP (DOCS_PATHS)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
EVERY_ANSWER = [(b"x-content-type-options", b"nosniff")]
HTML_ANSWER = [(b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in DOCS_PATHS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {name.lower() for name, _ in headers}
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                # a 304 of a page carries no content type: the browser keeps the page's stored headers
                added = EVERY_ANSWER
                if content_type.startswith(b"text/html"):
                    added = added + HTML_ANSWER + ([] if docs else [(b"content-security-policy", CSP.encode())])
                headers += [(n, v) for n, v in added if n not in names]
                message = message | {"headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
