"""The public pages are served from memory with an ETag: a phone that comes back with the page in its
cache asks with If-None-Match and gets a 304 of no body (the same page, nothing downloaded again), and
after a deploy that changed a page it gets the new page, not its old copy."""

import httpx
import pytest

from api.static_page import StaticPage

# each public page with its Indonesian path: both paths serve the same page, so the same ETag
PAGES = [("/complaint", "/pengaduan"), ("/beds", "/tempat-tidur"), ("/city", "/kota"), ("/data", "/data-terbuka"),
         ("/hospital-desk", None)]


@pytest.mark.parametrize(("path", "indonesian"), PAGES)
def test_a_page_in_the_browsers_cache_is_not_sent_again(api, path, indonesian):
    with httpx.Client(base_url=api.url, timeout=10) as c:
        page = c.get(path)
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.text.startswith("<!doctype html>") and len(page.content) > 1000
        etag = page.headers["etag"]
        assert page.headers["cache-control"] == "public, max-age=60" and page.headers["last-modified"]

        again = c.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag and again.headers["cache-control"] == "public, max-age=60"
        # a browser may send several tags, weak or not, and If-Modified-Since alone
        assert c.get(path, headers={"If-None-Match": f'"old", W/{etag}'}).status_code == 304
        assert c.get(path, headers={"If-Modified-Since": page.headers["last-modified"]}).status_code == 304

        # an old copy (another tag) gets the whole page, even when its date looks recent enough
        stale = c.get(path, headers={"If-None-Match": '"0123456789abcdef0123"',
                                     "If-Modified-Since": page.headers["last-modified"]})
        assert stale.status_code == 200 and stale.content == page.content
        if indonesian:
            same = c.get(indonesian, headers={"If-None-Match": etag})
            assert same.status_code == 304 and c.get(indonesian).content == page.content


def test_a_changed_page_gets_a_new_etag(tmp_path):
    """After a deploy (the API restarts and reads the files again) a browser's old copy is not current."""
    file = tmp_path / "page.html"
    file.write_text("<!doctype html><p>Pengaduan</p>")
    before = StaticPage(file)
    file.write_text("<!doctype html><p>Pengaduan warga</p>")
    after = StaticPage(file)
    assert after.etag != before.etag and after.body == file.read_bytes()
    assert StaticPage(file).etag == after.etag
