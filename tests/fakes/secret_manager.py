"""A stateful fake of Google Secret Manager's async client (access_secret_version)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class NotFound(Exception):
    pass


@dataclass
class _Payload:
    data: bytes


@dataclass
class _Response:
    name: str
    payload: _Payload


class FakeSecretManager:
    def __init__(self, project: str, secrets: Mapping[str, str]) -> None:
        self.project = project
        self.secrets = dict(secrets)  # secret id -> latest value
        self.requests: list[str] = []

    async def access_secret_version(self, *, request: Mapping[str, str]) -> Any:
        name = request["name"]
        self.requests.append(name)
        prefix = f"projects/{self.project}/secrets/"
        if not name.startswith(prefix) or not name.endswith("/versions/latest"):
            raise NotFound(name)
        secret_id = name[len(prefix):-len("/versions/latest")]
        if secret_id not in self.secrets:
            raise NotFound(name)
        return _Response(name, _Payload(self.secrets[secret_id].encode()))
