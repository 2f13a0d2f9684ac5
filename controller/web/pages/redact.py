"""What of a stored delivery the operator's page may show: its payload with secrets redacted
(the values of keys that look like secrets, at any depth; values that look like tokens, and
the controller's own secret values (`known`), wherever they are), pretty-printed, and its
headers without those that carry credentials. Pure: text and mappings in, text and mappings
out; no I/O, no HTML (the templates escape).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

REDACTED = "[redacted]"
SHOWN_BYTES = 256 * 1024  # of a pretty-printed payload; the rest is cut (the API has it whole)

# A key is secret-looking when one of its words (split at punctuation and camelCase) is one of
# these, or ends with one of SUFFIXES ("apikey", "accessToken" -> access, token). Over-redacting
# a harmless value (`keys_url`, `input_tokens`) is the price of never showing a secret.
WORDS = frozenset({
    "token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd",
    "passphrase", "key", "keys", "apikey", "authorization", "auth", "signature", "signatures",
    "sig", "cookie", "cookies", "credential", "credentials", "bearer", "jwt", "otp",
    "private"})
SUFFIXES = ("token", "secret", "password", "key", "signature", "cookie", "credentials")
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# Values that are credentials whatever key holds them (a token pasted in a comment).
_VALUES = re.compile(
    r"\bgh[pousr]_[A-Za-z0-9]{16,}"            # GitHub tokens
    r"|\bgithub_pat_[A-Za-z0-9_]{16,}"
    r"|\bsk-ant-[A-Za-z0-9_\-]{8,}"             # Anthropic keys
    r"|\bsk-[A-Za-z0-9]{20,}"
    r"|\bxox[abprs]-[A-Za-z0-9\-]{8,}"          # Slack tokens
    r"|\bAKIA[0-9A-Z]{16}\b"                    # AWS access key ids
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"  # JWTs
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/\-]{8,}=*"
    r"|(?<=://)[^\s/:@]+:[^\s/@]+(?=@)")        # user:password@ in a URL


def secret_name(name: str) -> bool:
    """Whether a key (a JSON member's or a header's name) names a secret."""
    for word in _WORD.findall(name):
        lowered = word.lower()
        if lowered in WORDS or lowered.endswith(SUFFIXES):
            return True
    return False


def scrub_text(text: str, known: Iterable[str] = ()) -> str:
    """`text` with every credential-looking value in it, and every `known` secret value (at
    least 6 characters: shorter ones would shred ordinary words), replaced."""
    text = _VALUES.sub(REDACTED, text)
    for secret in sorted((s for s in known if len(s) >= 6), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact(value: Any, known: Iterable[str] = ()) -> Any:
    """`value` (parsed JSON) with the values of secret-looking keys replaced at any depth
    (null and true/false are kept: they carry no secret) and strings scrubbed."""
    known = tuple(known)
    if isinstance(value, Mapping):
        return {k: (REDACTED if secret_name(str(k)) and v is not None
                    and not isinstance(v, bool) else redact(v, known))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, known) for v in value]
    if isinstance(value, str):
        return scrub_text(value, known)
    return value


def pretty_payload(raw: str, known: Iterable[str] = ()) -> tuple[str, bool]:
    """The stored payload text, redacted and indented, and whether it was cut. A payload that
    is not JSON is shown as it is, scrubbed."""
    known = tuple(known)
    try:
        shown = orjson.dumps(redact(orjson.loads(raw), known),
                             option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        shown = scrub_text(raw, known)
    if len(shown) <= SHOWN_BYTES:
        return shown, False
    return shown[:SHOWN_BYTES], True


def safe_headers(headers: Mapping[str, Any], known: Iterable[str] = ()
                 ) -> tuple[list[tuple[str, str]], int]:
    """The headers that may be shown, sorted by name, and how many were withheld because
    their names say they carry credentials (Authorization, Cookie, X-Hub-Signature-256...)."""
    shown, withheld, known = [], 0, tuple(known)
    for name, value in headers.items():
        if secret_name(str(name)):
            withheld += 1
        else:
            shown.append((str(name), scrub_text(str(value), known)))
    return sorted(shown, key=lambda h: h[0].lower()), withheld
