"""Reading one setting's value: the `.env` file and the checks each kind of
value gets (numbers in range, choices, URLs, IPs, origins, secrets, ICE URLs).
Each failure is a ``ConfigError`` with one line naming the setting."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path


class ConfigError(ValueError):
    """One bad setting; ``str()`` is a single line naming it."""


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments, optional 'export ', quotes stripped."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f".env: cannot read {path} ({exc})") from exc
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f".env line {lineno}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def int_in_range(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value}: must be between {lo} and {hi}")
    return value


def float_in_range(name: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value}: must be between {lo:g} and {hi:g}")
    return value


def one_of(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r}: must be one of {', '.join(choices)}")
    return value


def chain_of(name: str, raw: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """A comma list of engines in fallback order: ``auto``, or names from
    ``choices`` (each once; ``auto`` only alone)."""
    items = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    if not items:
        raise ConfigError(f"{name}={raw!r}: must name at least one of {', '.join(choices)}")
    for item in items:
        one_of(name, item, choices)
    if "auto" in items and len(items) > 1:
        raise ConfigError(f"{name}={raw!r}: auto is a chain by itself; list engines instead")
    if len(set(items)) != len(items):
        raise ConfigError(f"{name}={raw!r}: an engine is listed twice")
    return items


def redis_url(name: str, raw: str) -> str:
    value = raw.strip()
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        # Never echo it: a Redis URL may carry a password.
        raise ConfigError(f"{name}: must start with redis://, rediss:// or unix://")
    return value


def url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name}={raw!r}: must start with http:// or https://")
    return value


def ip_list(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(p.strip() for p in raw.split(",") if p.strip())
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address") from None
    return items


def origin_list(name: str, raw: str) -> tuple[str, ...]:
    """``*`` or a comma list of scheme://host[:port] origins, normalised."""
    items = tuple(p.strip() for p in raw.split(",") if p.strip())
    if "*" in items:
        if len(items) > 1:
            raise ConfigError(f"{name}: '*' allows every origin and cannot be combined")
        return items
    out = []
    for item in items:
        origin = normalize_origin(item)
        if origin is None:
            raise ConfigError(
                f"{name}: {item!r} is not an origin like https://example.com or http://host:8080"
            )
        out.append(origin)
    return tuple(out)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str | None:
    """``scheme://host:port`` in lower case with the port spelled out, or None.

    The form an ``Origin`` header (RFC 6454) and an ALLOWED_ORIGINS entry are
    compared in, so ``https://Example.com`` and ``https://example.com:443`` match.
    """
    scheme, sep, rest = value.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS or not rest or any(c in rest for c in "/?#@ "):
        return None
    host, port_text = rest, ""
    if rest.startswith("["):  # [IPv6]:port
        end = rest.find("]")
        if end < 0:
            return None
        host, port_text = rest[: end + 1], rest[end + 1 :].removeprefix(":")
        if rest[end + 1 :] and not rest[end + 1 :].startswith(":"):
            return None
    elif ":" in rest:
        host, port_text = rest.rsplit(":", 1)
    if not host:
        return None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        port = int(port_text)
    else:
        port = _DEFAULT_PORTS[scheme]
    return f"{scheme}://{host.lower()}:{port}"


def secret(name: str, raw: str) -> str:
    value = raw.strip()
    if value and len(value) < 16:
        # Never echo the value: it is a secret even when it is a bad one.
        raise ConfigError(f"{name}: must be at least 16 characters (use a long random string)")
    return value


def stun_url_list(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(p.strip() for p in raw.split(",") if p.strip())
    for item in items:
        if item.startswith(("turn:", "turns:")):
            # A TURN server without credentials refuses every allocation.
            raise ConfigError(f"{name}: {item!r} is a TURN server; put it in TURN_URLS")
        if not item.startswith("stun:"):
            raise ConfigError(f"{name}: {item!r} must be a stun: URL")
    return items


def turn_url_list(name: str, raw: str) -> tuple[str, ...]:
    """turn:/turns: URLs (RFC 7065): host, optional port, optional ?transport=udp|tcp."""
    items = tuple(p.strip() for p in raw.split(",") if p.strip())
    for item in items:
        scheme, _, rest = item.partition(":")
        address, _, query = rest.partition("?")
        if scheme not in ("turn", "turns") or not address or address.startswith("/"):
            raise ConfigError(
                f"{name}: {item!r} must be a URL like turn:turn.example.com:3478?transport=udp"
            )
        if query and query not in ("transport=udp", "transport=tcp"):
            raise ConfigError(f"{name}: {item!r}: only ?transport=udp or ?transport=tcp")
    return items


def network_list(name: str, raw: str) -> tuple[str, ...]:
    """IP addresses or CIDR networks, as given (``10.0.0.0/8``, ``::1``)."""
    items = tuple(p.strip() for p in raw.split(",") if p.strip())
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or CIDR network") from None
    return items


def flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: expected true or false")


def phone_number_map(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """``+15551230000=receptionist,+15551230001=sales`` -> ((number, agent id), ...)."""
    pairs = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        number, sep, agent = item.partition("=")
        number, agent = number.strip().replace(" ", ""), agent.strip()
        if not sep or not re.fullmatch(r"\+?[0-9]{3,20}", number) or not agent:
            raise ConfigError(f"{name}: {item!r} is not +NUMBER=agent_id")
        pairs.append((number, agent))
    return tuple(pairs)


def database_url(name: str, raw: str) -> str:
    from media_server.store.db import database_path  # the store reads the URL the same way

    try:
        database_path(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    return raw.strip()
