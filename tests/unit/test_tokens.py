"""Access control, pure parts: tokens, the per-IP rate limit, Origin checks,
the access-log redaction and the settings that drive them."""

from __future__ import annotations

import base64
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_server.config import ConfigError, load_settings
from media_server.config_values import normalize_origin
from signaling.access_log import redact_tokens
from signaling.limits import RateLimiter, origin_allowed, retry_after_header
from signaling.tokens import (
    TOKEN_CHARS,
    TokenError,
    TokenVerifier,
    mint_token,
)

SECRET = "correct horse battery staple"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def use(verifier: TokenVerifier, token: object) -> None:
    verifier.spend(verifier.check(token))


def refusal(verifier: TokenVerifier, token: object) -> str:
    with pytest.raises(TokenError) as info:
        use(verifier, token)
    if isinstance(token, str) and token:
        assert token not in str(info.value)
    return info.value.code


# ---- tokens ------------------------------------------------------------------


def test_a_token_is_urlsafe_and_opens_exactly_one_session():
    clock = Clock()
    token = mint_token(SECRET, 300, now=clock())
    assert len(token) == TOKEN_CHARS and "=" not in token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    verifier = TokenVerifier(SECRET, 300, clock=clock)
    use(verifier, token)
    assert refusal(verifier, token) == "token_used"
    assert verifier.remembered == 1


def test_check_alone_does_not_spend():
    clock = Clock()
    verifier = TokenVerifier(SECRET, 300, clock=clock)
    token = mint_token(SECRET, 300, now=clock())
    verifier.check(token)
    verifier.check(token)  # a 503 or a bad SDP in between leaves it usable
    use(verifier, token)


def test_expired_tokens_are_refused_and_their_nonces_forgotten():
    clock = Clock()
    verifier = TokenVerifier(SECRET, 60, clock=clock)
    spent = mint_token(SECRET, 60, now=clock())
    use(verifier, spent)
    late = mint_token(SECRET, 60, now=clock())
    clock.now += 61
    assert refusal(verifier, late) == "token_expired"
    clock.now += 120  # past expiry plus skew: the spent nonce is dropped on the next spend
    use(verifier, mint_token(SECRET, 60, now=clock()))
    assert verifier.remembered == 1
    assert refusal(verifier, spent) == "token_expired"  # and still can't be replayed


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        7,
        ["x"],
        "not a token",
        "A" * TOKEN_CHARS,
        "é" * TOKEN_CHARS,
        "=" * TOKEN_CHARS,
    ],
)
def test_garbage_is_refused_without_echo(bad):
    verifier = TokenVerifier(SECRET, 300)
    code = refusal(verifier, bad)
    assert code == ("token_required" if bad in (None, "") else "token_invalid")


def test_other_secret_and_tampering_are_refused():
    clock = Clock()
    verifier = TokenVerifier(SECRET, 300, clock=clock)
    assert refusal(verifier, mint_token("another secret entirely", 300, now=clock())) == (
        "token_invalid"
    )
    token = mint_token(SECRET, 300, now=clock())
    raw = bytearray(base64.urlsafe_b64decode(token + "="))
    raw[3] ^= 0x01  # push the expiry: the MAC no longer matches
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert refusal(verifier, forged) == "token_invalid"


def test_a_token_longer_than_the_servers_ttl_is_refused():
    clock = Clock()
    verifier = TokenVerifier(SECRET, 60, clock=clock)
    assert refusal(verifier, mint_token(SECRET, 3600, now=clock())) == "token_invalid"


def test_the_nonce_table_is_bounded_and_fails_closed():
    clock = Clock()
    verifier = TokenVerifier(SECRET, 60, clock=clock, max_nonces=3)
    for _ in range(3):
        use(verifier, mint_token(SECRET, 60, now=clock()))
    assert refusal(verifier, mint_token(SECRET, 60, now=clock())) == "token_capacity"
    clock.now += 200
    use(verifier, mint_token(SECRET, 60, now=clock()))
    assert verifier.remembered == 1


def test_the_secret_never_shows_in_repr():
    assert SECRET not in repr(TokenVerifier(SECRET, 60))


@given(st.data())
def test_any_single_character_change_is_refused(data):
    clock = Clock()
    token = mint_token(SECRET, 300, now=clock())
    at = data.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    char = data.draw(st.sampled_from(alphabet).filter(lambda c: c != token[at]))
    changed = token[:at] + char + token[at + 1 :]
    verifier = TokenVerifier(SECRET, 300, clock=clock)
    try:
        use(verifier, changed)
    except TokenError as exc:
        assert exc.code == "token_invalid"
    else:
        # Only the last character carries padding bits base64 ignores.
        assert at == len(token) - 1


# ---- rate limit -------------------------------------------------------------


def test_rate_limit_allows_a_burst_then_refills():
    clock = Clock(0.0)
    limiter = RateLimiter(6, clock=clock)  # 6 a minute: one every 10 s
    assert [limiter.acquire("1.2.3.4") for _ in range(6)] == [0.0] * 6
    wait = limiter.acquire("1.2.3.4")
    assert 9.9 < wait <= 10.0 and retry_after_header(wait) == "10"
    assert limiter.acquire("5.6.7.8") == 0.0  # per address
    clock.now += 10.0
    assert limiter.acquire("1.2.3.4") == 0.0
    assert limiter.acquire("1.2.3.4") > 0


def test_rate_limit_zero_disables_and_table_is_bounded():
    assert all(RateLimiter(0).acquire("x") == 0.0 for _ in range(1000))
    limiter = RateLimiter(1, clock=Clock(0.0), max_clients=100)
    for i in range(1000):
        limiter.acquire(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100


def test_retry_after_is_a_whole_number_of_at_least_one():
    assert retry_after_header(0.01) == "1" and retry_after_header(2.2) == "3"


# ---- Origin ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "127.0.0.1:8080", (), True),  # curl, scripts: tokens protect these
        ("http://127.0.0.1:8080", "127.0.0.1:8080", (), True),
        ("http://LOCALHOST:8080", "localhost:8080", (), True),
        ("https://voice.example.com", "voice.example.com", (), True),  # default port
        ("https://voice.example.com", "voice.example.com:443", (), True),
        ("http://[::1]:8080", "[::1]:8080", (), True),
        ("http://127.0.0.1:8081", "127.0.0.1:8080", (), False),  # another port
        ("http://evil.example", "127.0.0.1:8080", (), False),
        ("https://voice.example.com", "voice.example.com:80", (), False),
        ("null", "127.0.0.1:8080", (), False),
        ("http://127.0.0.1:8080", None, (), False),
        ("javascript:alert(1)", "127.0.0.1:8080", (), False),
        ("http://app.example:3000", "127.0.0.1:8080", ("http://app.example:3000",), True),
        ("http://app.example:3000", "app.example:3000", ("https://app.example",), False),
        ("https://app.example", "x", ("https://app.example:443",), True),
        ("http://anything.example", "x", ("*",), True),
        ("null", "x", ("*",), True),
    ],
)
def test_origin_rules(origin, host, allowed, ok):
    allowed = tuple(normalize_origin(a) or a for a in allowed)
    assert origin_allowed(origin, host, allowed) is ok


def test_allowed_origins_setting_is_validated_and_normalized():
    s = load_settings(
        {},
        environ={"ALLOWED_ORIGINS": "https://A.example, http://b.example:8080"},
        dotenv_path=None,
    )
    assert s.allowed_origins == ("https://a.example:443", "http://b.example:8080")
    for bad in ("example.com", "ftp://x", "https://x/path", "*,https://x", "http://x:99999"):
        with pytest.raises(ConfigError, match="ALLOWED_ORIGINS"):
            load_settings({}, environ={"ALLOWED_ORIGINS": bad}, dotenv_path=None)


# ---- settings -------------------------------------------------------------------


def test_new_settings_have_safe_defaults():
    s = load_settings({}, environ={}, dotenv_path=None)
    assert s.host == "127.0.0.1"
    assert s.allowed_origins == () and s.auth_secret == "" and not s.auth_required
    assert s.rate_limit_per_minute == 60 and s.provider_error_limit == 3
    assert s.token_ttl_s == 300 and s.ping_timeout_s == 15


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"AUTH_SECRET": "short"}, "AUTH_SECRET"),
        ({"TOKEN_TTL_S": "1"}, "TOKEN_TTL_S"),
        ({"RATE_LIMIT_PER_MINUTE": "-1"}, "RATE_LIMIT_PER_MINUTE"),
        ({"PROVIDER_ERROR_LIMIT": "0"}, "PROVIDER_ERROR_LIMIT"),
        ({"PING_TIMEOUT_S": "x"}, "PING_TIMEOUT_S"),
    ],
)
def test_bad_access_settings_fail_with_one_line(env, name):
    with pytest.raises(ConfigError) as info:
        load_settings({}, environ=env, dotenv_path=None)
    message = str(info.value)
    assert name in message and "\n" not in message
    assert "short" not in message  # a secret is never echoed, even a bad one


def test_auth_secret_stays_out_of_repr():
    s = load_settings({}, environ={"AUTH_SECRET": SECRET}, dotenv_path=None)
    assert s.auth_required and SECRET not in repr(s)


# ---- access log -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "GET /?token=abc-DEF_123 HTTP/1.1",
        "GET /?agent=sales&token=abc-DEF_123 HTTP/1.1",
        '"http://127.0.0.1:8080/?TOKEN=abc-DEF_123&agent=sales"',
    ],
)
def test_access_log_redacts_tokens(line):
    out = redact_tokens(line)
    assert "abc-DEF_123" not in out and "[redacted]" in out
    assert ("agent=sales" in line) == ("agent=sales" in out)


async def test_access_logger_redacts_request_line_and_referer(caplog):
    from aiohttp import ClientSession, web

    from signaling.access_log import RedactingAccessLogger

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    secret_token = mint_token(SECRET, 60)
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with ClientSession() as http:
                url = f"http://127.0.0.1:{port}/?token={secret_token}"
                async with http.get(url, headers={"Referer": url}) as r:
                    assert r.status == 200
    finally:
        await runner.cleanup()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /?token=[redacted]" in text
    assert secret_token not in text


# ---- the `voice-agent token` command ---------------------------------------------


def test_token_command_mints_a_token_the_server_accepts(monkeypatch, tmp_path, capsys):
    from media_server.__main__ import main

    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("AUTH_SECRET", SECRET)
    monkeypatch.setenv("TOKEN_TTL_S", "120")
    assert main(["token"]) == 0
    token = capsys.readouterr().out.strip()
    use(TokenVerifier(SECRET, 120), token)

    assert main(["token", "--ttl", "30", "--url", "https://voice.example/"]) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://voice.example/?token=")
    use(TokenVerifier(SECRET, 120), link.split("=", 1)[1])


@pytest.mark.parametrize(
    ("env", "argv", "fragment"),
    [
        ({}, ["token"], "AUTH_SECRET is not set"),
        ({"AUTH_SECRET": SECRET}, ["token", "--ttl", "abc"], "--ttl"),
        ({"AUTH_SECRET": SECRET, "TOKEN_TTL_S": "60"}, ["token", "--ttl", "600"], "TOKEN_TTL_S"),
        ({"AUTH_SECRET": "too-short"}, ["token"], "AUTH_SECRET"),
    ],
)
def test_token_command_refuses_with_one_line(monkeypatch, tmp_path, capsys, env, argv, fragment):
    from media_server.__main__ import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTH_SECRET", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and fragment in captured.err
    assert captured.err.count("\n") == 1 and "too-short" not in captured.err
