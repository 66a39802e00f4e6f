"""What makes the CLI stop: a message for stderr and an exit code (clig.dev's conventions)."""

from __future__ import annotations

from typing import Any

OK = 0
JOB_UNSUCCESSFUL = 1  # the job failed or was cancelled (or the uploaded file failed its probe)
USAGE = 2  # bad arguments, an unreachable server, a refused key, a request the API refused
INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


class CliError(Exception):
    """Stop with one line on stderr and ``exit_code``; ``body`` goes to stdout under --json."""

    exit_code = USAGE

    def __init__(self, message: str, body: Any = None) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the server sent
        self.body = body


class ApiError(CliError):
    """The API answered 4xx/5xx with its error document {"error": {code, message, details}}."""

    def __init__(self, status: int, code: str, message: str, body: Any) -> None:
        super().__init__(f"{message} (HTTP {status} {code})", body)
        self.status = status
        self.code = code
