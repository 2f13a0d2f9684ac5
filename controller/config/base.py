"""What every settings group shares: the environment's rules (a field is read only from its
variable), durations of at most a week, shared secrets long enough not to be guessed. Reads
no variable itself."""

from __future__ import annotations

from pydantic import (
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

_ENV = SettingsConfigDict(extra="ignore", env_ignore_empty=True, allow_inf_nan=False)
LONGEST_SECONDS = 7 * 24 * 3600  # no duration setting means more than a week


SHORTEST_SECRET = 16


def _strong(secret: SecretStr | None) -> SecretStr | None:
    """A shared secret long enough not to be guessed (a short one is also too short for the
    log redactor to find safely). The message never quotes it."""
    if secret is not None and 0 < len(secret.get_secret_value()) < SHORTEST_SECRET:
        raise ValueError(f"must be at least {SHORTEST_SECRET} characters (generate one with "
                         "`openssl rand -hex 32`)")
    return secret


class _Group(BaseSettings):
    """A group of settings. Durations are finite and at most a week: `inf` or 1e300 would
    turn a deadline off, or overflow PostgreSQL's interval (every claim then fails)."""

    @field_validator("*")
    @classmethod
    def _a_week_at_most(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name and info.field_name.endswith("_seconds") \
                and isinstance(value, float) and value > LONGEST_SECONDS:
            raise ValueError(f"at most {LONGEST_SECONDS} seconds (a week)")
        return value
