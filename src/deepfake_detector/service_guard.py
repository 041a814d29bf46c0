"""What the service sends besides its answers: the Content-Security-Policy on every response
(the page's script and style are files of this server, so no inline code is allowed; Swagger UI
at /docs, whose files this server also serves, gets a policy of its own), and the check of
the ``Host`` header against ``serve.allowed_hosts`` (a page on another name, e.g. by DNS
rebinding, gets 400)."""

import base64

# The page and the API: scripts and styles only from this server, images also inline (the
# overlays are data: URLs), no plugins, no <base>, no framing.
POLICY = ("default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
          "frame-ancestors 'none'; form-action 'self'")
STATIC = {"app.js": "text/javascript; charset=utf-8", "video.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
# Swagger UI's own files, served at /docs/assets/<name> from the fastapi-offline wheel (no CDN:
# /docs works offline).
DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
               "swagger-ui.css": "text/css; charset=utf-8", "favicon.png": "image/png"}


def docs_asset(name: str) -> bytes:
    """One of ``DOCS_ASSETS``, as fastapi-offline ships it."""
    from importlib import resources

    return resources.files("fastapi_offline").joinpath("static", name).read_bytes()


def docs_page(title: str) -> tuple[str, str]:
    """FastAPI's Swagger UI page, its files from this server, and the policy that lets exactly
    that load: this server's files, the page's own inline start-up script (by its hash), and
    inline styles (Swagger UI sets them; no script can be injected through them)."""
    import hashlib
    import re

    from fastapi.openapi.docs import get_swagger_ui_html

    html = get_swagger_ui_html(openapi_url="/openapi.json", title=title, oauth2_redirect_url=None,
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon.png",
                               swagger_ui_parameters={"validatorUrl": None}).body.decode()
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
                      + "'" for s in re.findall(r"<script>(.*?)</script>", html, re.S))
    return html, (f"default-src 'none'; script-src 'self' {hashes}; "
                  "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                  "connect-src 'self'; object-src 'none'; base-uri 'none'; "
                  "frame-ancestors 'none'; form-action 'none'")


def allowed_hosts(serve_cfg: dict) -> list[str]:
    """``serve.allowed_hosts``, or (null) the loopback names and ``serve.host``. ``*`` accepts
    any Host (only behind a proxy that checks it), ``*.example.org`` any name under it."""
    hosts = serve_cfg["allowed_hosts"]
    if hosts is None:
        hosts = ["localhost", "127.0.0.1", "::1", serve_cfg["host"]]
    return [str(h).strip().lower().strip("[]") for h in hosts]


def host_allowed(header: str, allowed: list[str]) -> bool:
    """Whether a Host header (any port) names this server: a page on another name (DNS
    rebinding: evil.example resolving to 127.0.0.1) gets 400, not the API."""
    name, port = header.strip().lower(), ""
    if name.startswith("["):  # [::1]:8000
        name, _, rest = name[1:].partition("]")
        if rest and not rest.startswith(":"):
            return False
        port = rest[1:]
    elif name.count(":") == 1:
        name, _, port = name.partition(":")
    if not name or not (port == "" or port.isdigit()):
        return False
    name = name.removesuffix(".")
    return any(a == "*" or a == name or (a.startswith("*.") and name.endswith(a[1:]))
               for a in allowed)


class Guard:
    """ASGI middleware: refuse a Host that is not ours; put the security headers on every
    answer (the docs page gets its own policy)."""

    def __init__(self, app, hosts: list[str], docs_policy: str):
        self.app, self.hosts, self.docs_policy = app, hosts, docs_policy

    async def __call__(self, scope, receive, send):
        from starlette.datastructures import Headers, MutableHeaders
        from starlette.responses import JSONResponse

        if scope["type"] != "http":  # lifespan (the app serves no websockets)
            return await self.app(scope, receive, send)
        policy = self.docs_policy if scope["path"] == "/docs" else POLICY

        async def send_secured(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["content-security-policy"] = policy
                headers["x-content-type-options"] = "nosniff"
                headers["referrer-policy"] = "no-referrer"
            await send(message)

        host = Headers(scope=scope).get("host", "")
        if not host_allowed(host, self.hosts):
            reply = JSONResponse(status_code=400, headers={"connection": "close"}, content={
                "detail": f"Host {host!r} is not served here (serve.allowed_hosts)"})
            return await reply(scope, receive, send_secured)
        await self.app(scope, receive, send_secured)
