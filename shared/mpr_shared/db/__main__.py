"""``python -m mpr_shared.db upgrade|downgrade REV|revision -m MSG``: manage the schema."""

from __future__ import annotations

import argparse
import logging

from alembic import command

from mpr_shared.db.migrate import alembic_config, downgrade, mask_password, upgrade
from mpr_shared.settings import CommonSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mpr_shared.db")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("upgrade").add_argument("revision", nargs="?", default="head")
    sub.add_parser("downgrade").add_argument("revision")
    rev = sub.add_parser("revision")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = CommonSettings().database_url.get_secret_value()
    try:
        run(args, url)
    except Exception as exc:  # one line, never the password (drivers may quote the URL)
        logging.getLogger("mpr_shared.db").error(
            "%s failed: %s", args.cmd, mask_password(f"{type(exc).__name__}: {exc}", url)
        )
        raise SystemExit(1) from None


def run(args: argparse.Namespace, url: str) -> None:
    """The chosen command on the database at ``url``."""
    if args.cmd == "upgrade":
        upgrade(url, args.revision)
    elif args.cmd == "downgrade":
        downgrade(url, args.revision)
    else:
        command.revision(alembic_config(url), message=args.message, autogenerate=True)


if __name__ == "__main__":
    main()
