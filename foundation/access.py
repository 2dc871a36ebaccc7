"""Who may do what: the sign-in mode, the people-to-roles map and the decisions made from them.

Three modes, from the configuration (secrets.toml):
- "oidc": an [auth] section (Streamlit's st.login with the company's identity provider);
- "proxy": access.proxy_header names the header an authenticating proxy (oauth2-proxy,
  Cloudflare Access, an IAP) puts the user's e-mail in, trusted only from access.trusted_proxies;
- "local": neither. One operator on 127.0.0.1, whose role is the `role` setting (DBPULSE_ROLE):
  viewer unless they opt in to "dba". Exposing a local DBA on a network address is refused.

The role map ([access] dba = [...], viewer = [...], optionally per target under
[access.targets.NAME]) lists e-mails, "@domain" and "group:NAME" (groups from the provider's
claim or the proxy's groups header); `unknown` says what everyone else is: "viewer" or "refuse".
Pure functions: the UI asks, the core checks the decided role for each action.
"""

from __future__ import annotations

import base64
import getpass
import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Mapping

from foundation.config import ROLES, ConfigError, Settings

UNKNOWN_CHOICES = ("viewer", "refuse")


class AccessRefused(Exception):
    """This person or request gets no role; the message says why and what would change it."""


@dataclass(frozen=True)
class RoleMap:
    dba: tuple[str, ...] = ()
    viewer: tuple[str, ...] = ()


@dataclass(frozen=True)
class Person:
    name: str                          # an e-mail, or cli:/local:<os user>
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessPolicy:
    mode: str                          # local | oidc | proxy
    roles: RoleMap = RoleMap()
    per_target: Mapping[str, RoleMap] = field(default_factory=dict)
    unknown: str = "viewer"
    local_role: str = "viewer"         # the `role` setting: local mode and the CLI
    groups_claim: str = "groups"
    proxy_header: str = ""
    proxy_groups_header: str = ""
    trusted_proxies: tuple[str, ...] = ()


def _entries(value, where: str) -> tuple[str, ...]:
    """Validated role-map entries.

    >>> _entries(["Ann@Example.com", "@corp.example", "group:DBAs", "cli:deploy"], "dba")
    ('ann@example.com', '@corp.example', 'group:dbas', 'cli:deploy')
    >>> _entries(["ann"], "dba")
    Traceback (most recent call last):
    ...
    foundation.config.ConfigError: access.dba: 'ann' is not an e-mail, an @domain, group:NAME, cli:USER or local:USER
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"access.{where} must be a list of strings")
    out = []
    for entry in value:
        text = str(entry).strip().lower()
        kind, _, rest = text.partition(":")
        if (kind in ("group", "cli", "local") and rest) or ("@" in text and ":" not in text
                                                          and not text.endswith("@")):
            out.append(text)
        else:
            raise ConfigError(f"access.{where}: {entry!r} is not an e-mail, an @domain, "
                              "group:NAME, cli:USER or local:USER")
    return tuple(out)


def _role_map(section: Mapping, where: str) -> RoleMap:
    return RoleMap(dba=_entries(section.get("dba", ()), f"{where}dba"),
                   viewer=_entries(section.get("viewer", ()), f"{where}viewer"))


def _networks(values, where: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [v.strip() for v in values.split(",") if v.strip()]
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise ConfigError(f"{where}: {value!r} is not an IP address or network") from exc
    return tuple(values)


def load_policy(secrets: Mapping, settings: Settings) -> AccessPolicy:
    """The access policy from the secrets' [access] and [auth] sections."""
    section = secrets.get("access", {})
    if not isinstance(section, Mapping):
        raise ConfigError("[access] must be a table")
    known = {"dba", "viewer", "unknown", "targets", "groups_claim", "proxy_header",
             "proxy_groups_header", "trusted_proxies"}
    extra = set(section) - known
    if extra:
        raise ConfigError(f"[access] has unknown keys: {', '.join(sorted(extra))} "
                          f"(known: {', '.join(sorted(known))})")
    unknown = section.get("unknown", "viewer")
    if unknown not in UNKNOWN_CHOICES:
        raise ConfigError(f"access.unknown must be \"viewer\" or \"refuse\", got {unknown!r}")
    targets = section.get("targets", {})
    if not isinstance(targets, Mapping) or not all(isinstance(v, Mapping)
                                                   for v in targets.values()):
        raise ConfigError("[access.targets.NAME] must be tables with dba and viewer lists")
    proxy_header = str(section.get("proxy_header", "")).strip()
    has_auth = isinstance(secrets.get("auth"), Mapping)
    if proxy_header and has_auth:
        raise ConfigError("both [auth] (sign-in with an identity provider) and "
                          "access.proxy_header (an authenticating proxy) are set: keep one")
    trusted = _networks(section.get("trusted_proxies", ()), "access.trusted_proxies")
    if proxy_header and not trusted:
        raise ConfigError("access.proxy_header is set but access.trusted_proxies is empty: "
                          "name the proxy's addresses, the header is trusted from them only")
    if settings.role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {settings.role!r}")
    return AccessPolicy(
        mode="oidc" if has_auth else "proxy" if proxy_header else "local",
        roles=_role_map(section, ""),
        per_target={name: _role_map(values, f"targets.{name}.")
                    for name, values in targets.items()},
        unknown=unknown, local_role=settings.role,
        groups_claim=str(section.get("groups_claim", "groups")),
        proxy_header=proxy_header,
        proxy_groups_header=str(section.get("proxy_groups_header", "")).strip(),
        trusted_proxies=trusted)


def _matches(entries: tuple[str, ...], person: Person) -> bool:
    name = person.name.lower()
    groups = {f"group:{g.lower()}" for g in person.groups}
    return any(e == name or (e.startswith("@") and name.endswith(e)) or e in groups
               for e in entries)


def decide_role(policy: AccessPolicy, person: Person, target: str) -> str:
    """The role of a person on a target, or AccessRefused.

    >>> p = AccessPolicy("oidc", RoleMap(dba=("ann@example.com",), viewer=("@example.com",)),
    ...                  {"staging": RoleMap(dba=("@example.com",))}, unknown="refuse")
    >>> decide_role(p, Person("bob@example.com"), "production")
    'viewer'
    >>> decide_role(p, Person("bob@example.com"), "staging")
    'dba'
    >>> decide_role(p, Person("eve@elsewhere.org"), "production")
    Traceback (most recent call last):
    ...
    foundation.access.AccessRefused: eve@elsewhere.org is in no role list for target production, and unknown people are refused (access.unknown = "refuse"). Ask a DB Pulse administrator to add you.
    >>> decide_role(p, Person("cli:root"), "production")  # the CLI and local mode: `role`
    'viewer'
    """
    roles = policy.per_target.get(target, policy.roles)
    if _matches(roles.dba, person):
        return "dba"
    if _matches(roles.viewer, person):
        return "viewer"
    if person.name.startswith(("cli:", "local:")):
        return policy.local_role
    if policy.unknown == "viewer":
        return "viewer"
    raise AccessRefused(f"{person.name} is in no role list for target {target}, and unknown "
                        "people are refused (access.unknown = \"refuse\"). Ask a DB Pulse "
                        "administrator to add you.")


def os_person(prefix: str) -> Person:
    """`cli:<os user>` for the CLI, `local:<os user>` for the local dashboard."""
    return Person(f"{prefix}:{getpass.getuser()}")


def is_loopback(address: str | None) -> bool:
    """
    >>> [is_loopback(a) for a in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "", None)]
    [True, True, True, False, False, False]
    """
    if not address:
        return False  # Streamlit without server.address listens on every interface
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def start_problem(policy: AccessPolicy, address: str | None,
                  forwarded_allow_ips: str | None = "") -> str | None:
    """Why DB Pulse must not serve with this configuration on this address, or None.
    forwarded_allow_ips: the FORWARDED_ALLOW_IPS of the serving process (None: unset).

    >>> start_problem(AccessPolicy("proxy", proxy_header="X-Email"), "0.0.0.0", None)[:60]
    'DB Pulse will not serve behind a sign-in proxy while this pr'
    >>> start_problem(AccessPolicy("proxy", proxy_header="X-Email"), "0.0.0.0", "") is None
    True
    """
    if policy.mode == "proxy" and forwarded_allow_ips != "":
        # Streamlit's server (uvicorn) replaces the peer's address by X-Forwarded-For's client
        # when the peer is in FORWARDED_ALLOW_IPS, loopback by default: a local client could
        # then claim to be the trusted proxy and name anyone in the identity header
        return ("DB Pulse will not serve behind a sign-in proxy while this process trusts "
                "X-Forwarded-For from "
                f"{forwarded_allow_ips or '127.0.0.1 and ::1 (the default)'}: a client could "
                "claim the proxy's address. Start it with `cli.py serve`, or with "
                "FORWARDED_ALLOW_IPS set to an empty value in its environment.")
    if policy.mode != "local" or policy.local_role != "dba" or is_loopback(address):
        return None
    return (f"DB Pulse will not serve DBA actions on {address or 'every interface'} without "
            "sign-in: anyone who reaches that address could apply migrations or end sessions. "
            "Listen on 127.0.0.1 (server.address), or configure sign-in ([auth] for an identity "
            "provider, access.proxy_header behind an authenticating proxy), or set "
            "role = \"viewer\".")


def email_person(email, groups, source: str) -> Person:
    if not isinstance(email, str) or "@" not in email:
        raise AccessRefused(f"{source} sent no e-mail address, so DB Pulse cannot tell who you "
                            "are.")
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    return Person(email.strip().lower(), tuple(str(g) for g in groups or ()))


def oidc_person(policy: AccessPolicy, claims: Mapping, now: float) -> Person:
    """The person the identity provider signed in, from st.user's claims.

    >>> p = AccessPolicy("oidc")
    >>> oidc_person(p, {"email": "Ann@Example.com", "groups": ["dba"], "exp": 200}, 100)
    Person(name='ann@example.com', groups=('dba',))
    >>> oidc_person(p, {"email": "ann@example.com", "exp": 100}, 160)
    Traceback (most recent call last):
    ...
    foundation.access.AccessRefused: Your sign-in expired 1 min ago: sign in again.
    """
    if claims.get("email_verified") is False:
        raise AccessRefused(f"The identity provider says {claims.get('email')} is not verified.")
    expires = claims.get("exp")
    if isinstance(expires, (int, float)) and expires < now:
        raise AccessRefused(f"Your sign-in expired {max(1, round((now - expires) / 60))} min "
                            "ago: sign in again.")
    return email_person(claims.get("email"), claims.get(policy.groups_claim), "The identity "
                        "provider")


def proxy_person(policy: AccessPolicy, headers: Mapping[str, str | list[str]],
                 peer: str | None) -> Person:
    """The person an authenticating proxy names, when the request comes from a trusted proxy;
    a header's value may be the list of every copy the request carried. Streamlit reports a
    loopback peer as None.

    >>> p = AccessPolicy("proxy", proxy_header="X-Forwarded-Email",
    ...                  trusted_proxies=("10.0.0.0/8",))
    >>> proxy_person(p, {"x-forwarded-email": "ann@example.com"}, "10.1.2.3").name
    'ann@example.com'
    >>> proxy_person(p, {"x-forwarded-email": ["eve@evil.org", "ann@example.com"]}, "10.1.2.3")
    Traceback (most recent call last):
    ...
    foundation.access.AccessRefused: The request carries 2 X-Forwarded-Email headers: the proxy must send exactly one, with one address. Open DB Pulse through the sign-in proxy.
    >>> proxy_person(p, {"x-forwarded-email": "eve@evil.org, ann@example.com"}, "10.1.2.3")
    Traceback (most recent call last):
    ...
    foundation.access.AccessRefused: The X-Forwarded-Email header holds more than one address: the proxy must send exactly one. Open DB Pulse through the sign-in proxy.
    >>> proxy_person(p, {"x-forwarded-email": "ann@example.com"}, "192.0.2.9")
    Traceback (most recent call last):
    ...
    foundation.access.AccessRefused: This connection comes from 192.0.2.9, which is not a trusted proxy (access.trusted_proxies): DB Pulse reads X-Forwarded-Email only from those. Open DB Pulse through the sign-in proxy.
    """
    address = peer or "127.0.0.1"
    try:
        trusted = any(ipaddress.ip_address(address) in ipaddress.ip_network(n, strict=False)
                      for n in policy.trusted_proxies)
    except ValueError:
        trusted = False
    if not trusted:
        raise AccessRefused(f"This connection comes from {address}, which is not a trusted proxy "
                            f"(access.trusted_proxies): DB Pulse reads {policy.proxy_header} only "
                            "from those. Open DB Pulse through the sign-in proxy.")
    lowered = {k.lower(): v if isinstance(v, list) else [v] for k, v in headers.items()}
    values = [v for v in lowered.get(policy.proxy_header.lower(), []) if v]
    if not values:
        raise AccessRefused(f"The request carries no {policy.proxy_header} header: the proxy did "
                            "not sign you in. Open DB Pulse through the sign-in proxy.")
    if len(values) > 1:
        raise AccessRefused(f"The request carries {len(values)} {policy.proxy_header} headers: "
                            "the proxy must send exactly one, with one address. Open DB Pulse "
                            "through the sign-in proxy.")
    value = values[0].strip()
    if "," in value or len(value.split()) != 1:
        raise AccessRefused(f"The {policy.proxy_header} header holds more than one address: the "
                            "proxy must send exactly one. Open DB Pulse through the sign-in "
                            "proxy.")
    # Google's IAP prefixes the address with its issuer ("accounts.google.com:ann@...")
    email = value.rsplit(":", 1)[-1]
    groups = ",".join(lowered.get(policy.proxy_groups_header.lower(), [])) \
        if policy.proxy_groups_header else None
    return email_person(email, groups, "The proxy")


def probe_provider(auth: Mapping, timeout_s: float = 3.0) -> str | None:
    """What is wrong with the identity provider configuration, found without a user: the
    discovery document must load, and the token endpoint must not reject the client's
    credentials (sent as sign-in sends them, HTTP Basic). None when nothing is known to be
    wrong. Never names a secret."""
    providers = {name: v for name, v in auth.items() if isinstance(v, Mapping)} or {"": auth}
    for name, config in providers.items():
        merged = {**{k: v for k, v in auth.items() if not isinstance(v, Mapping)}, **config}
        label = f"the identity provider {name!r}" if name else "the identity provider"
        url = merged.get("server_metadata_url")
        if not url or not merged.get("client_id"):
            return f"[auth] for {label} needs server_metadata_url and client_id."
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                metadata = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return (f"Sign-in is not possible: {label} cannot be reached at {url} ({reason}). "
                    "Check server_metadata_url and the network.")
        token_url = metadata.get("token_endpoint")
        if not token_url or not merged.get("client_secret"):
            continue
        # a code that cannot exist: the provider authenticates the client first (invalid_client
        # for a wrong secret) and only then rejects the code (invalid_grant)
        body = urllib.parse.urlencode({"grant_type": "authorization_code",
                                       "code": "dbpulse-credentials-probe",
                                       "redirect_uri": merged.get("redirect_uri", "")}).encode()
        basic = base64.b64encode(
            f"{urllib.parse.quote(str(merged['client_id']), safe='')}:"
            f"{urllib.parse.quote(str(merged['client_secret']), safe='')}".encode()).decode()
        try:
            urllib.request.urlopen(urllib.request.Request(
                token_url, data=body, headers={"Authorization": f"Basic {basic}"}),
                timeout=timeout_s).close()
        except urllib.error.HTTPError as exc:
            try:
                error = json.load(exc).get("error")
            except (ValueError, AttributeError):
                error = None
            if error == "invalid_client":
                return (f"Sign-in is not possible: {label} rejects DB Pulse's client_id or "
                        "client_secret (invalid_client). Check them in the [auth] section.")
        except (urllib.error.URLError, OSError) as exc:
            return (f"Sign-in is not possible: the token endpoint of {label} cannot be reached "
                    f"({getattr(exc, 'reason', exc)}).")
    return None
