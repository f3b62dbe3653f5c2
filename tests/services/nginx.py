"""Debian's nginx on loopback as a reverse proxy, one port per upstream."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.services.process import Service, free_port, require_binary

# What each kind of proxy tells the upstream about its client.
CLIENT_HEADERS = {
    "x-forwarded-for": "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "forwarded": 'proxy_set_header Forwarded "for=$remote_addr;proto=$scheme";',
}


def _config(root: Path, routes: list[tuple[int, str, str]]) -> str:
    servers = "\n".join(
        f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_set_header Host $http_host;
            {CLIENT_HEADERS[header]}
        }}
    }}"""
        for port, upstream, header in routes
    )
    return f"""
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{servers}
}}
"""


@contextmanager
def nginx(tmp_path: Path, upstreams: list[tuple[str, str]]) -> Iterator[list[str]]:
    """Proxies each ``(upstream base URL, header kind)``; yields their proxy URLs."""
    binary = require_binary("nginx", "apt-get install nginx")
    root = tmp_path / "nginx"
    root.mkdir()
    routes = [(free_port(), upstream, header) for upstream, header in upstreams]
    config = root / "nginx.conf"
    config.write_text(_config(root, routes))
    service = Service([binary, "-p", str(root), "-c", str(config)], root / "stdout.log")
    try:
        for port, _, _ in routes:
            service.wait_for_tcp(port)
        yield [f"http://127.0.0.1:{port}" for port, _, _ in routes]
    finally:
        service.stop()
