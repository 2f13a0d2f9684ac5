"""The GitHub client's error types, below both the client (`github.py`) and the operations it
is made of (`github_rest.py`, `github_git.py`), so that none imports another to raise or catch
them. No I/O."""

from __future__ import annotations

from controller.reconcile.errors import ProviderError, ProviderRefused


class GitHubError(ProviderRefused):
    """GitHub refused the request and retrying will not change that (a 4xx)."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"GitHub {method} {path}: {status} {message}")
        self.status = status
        self.github_message = message


class GitHubUnavailable(ProviderError):
    """GitHub kept failing (5xx, timeouts, connection errors) for a few attempts."""
