"""`p38 up`, `p38 serve` and `p38 worker`: settings and Secret Manager, then
`controller.serving`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from controller import serving
from controller.cli.common import settings_from
from controller.clients.secrets import (
    GoogleSecretManager,
    Secrets,
    SecretSource,
    api_write_token,
    with_provider_secrets,
)
from controller.clients.secrets import load as load_secrets
from controller.config import Settings
from controller.logs import SecretRedactor
from controller.serving import EXIT_CANNOT_START
from controller.store.embedded import HomeUnusable, prepare_home


def _with_secret_manager(settings: Settings, redactor: SecretRedactor
                         ) -> tuple[Settings, SecretSource | None]:
    """With GCP_PROJECT_ID: provider secrets from Secret Manager (read at start, then
    refreshed by the app every P38_SECRETS_TTL_SECONDS)."""
    project = settings.providers.gcp_project_id
    if not project:
        return settings, None
    holder = Secrets(on_change=lambda values: redactor.update(values, group="secret-manager"))
    manager = GoogleSecretManager.connect(project)
    asyncio.run(load_secrets(holder, manager))
    return with_provider_secrets(settings, holder), SecretSource(holder, manager)


def _serve(settings: Settings, *, banner: bool, unix: str | None = None,
           redactor: SecretRedactor | None = None) -> int:
    redactor = redactor or SecretRedactor()
    problem = _home_problem(settings)
    if problem is not None:
        return problem
    settings, secrets = _with_secret_manager(settings, redactor)
    write_token = None
    if settings.server.api_token is None:  # writes need a token whatever: the one kept here
        try:
            write_token = api_write_token(settings.store.home)
        except (OSError, ValueError) as exc:
            print(f"cannot start: the API's write token: {exc}", file=sys.stderr)
            return EXIT_CANNOT_START
        redactor.update([write_token], group="api-token")
    return serving.serve(settings, secrets=secrets, banner=banner, unix=unix,
                         write_token=write_token)


def cmd_up(args: argparse.Namespace) -> int:
    return _serve(settings_from(args), banner=True, unix=args.unix, redactor=args.redactor)


def cmd_serve(args: argparse.Namespace) -> int:
    return _serve(settings_from(args), banner=False, unix=args.unix, redactor=args.redactor)


def _home_problem(settings: Settings, *, token: bool = True) -> int | None:
    if settings.store.database_url is None or (token and settings.server.api_token is None):
        try:  # the embedded database or the API's write token lives there: made now
            prepare_home(settings.store.home)
        except HomeUnusable as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            return EXIT_CANNOT_START
    return None


def cmd_worker(args: argparse.Namespace) -> int:
    """Job workers only (`--kinds`), beside `p38 serve` processes on the same database."""
    settings = settings_from(args)
    problem = _home_problem(settings, token=False)
    if problem is not None:
        return problem
    redactor = args.redactor or SecretRedactor()
    settings, secrets = _with_secret_manager(settings, redactor)
    return serving.serve(settings, secrets=secrets, banner=False, unix=args.unix,
                         worker=args.kinds, listen=args.port is not None or bool(args.unix))
