"""S3 key rules for every entry point (REST, GraphQL, commands, uploads) and pydantic types.

A key is an object name, not a path: no leading '/', no '..' segment, at most 1024 UTF-8
bytes, and no character that hides what the key says (control, format, separator,
private-use, surrogate, noncharacter). Errors name the field and the code point, and never
echo the raw character. https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

MAX_KEY_BYTES = 1024  # S3's limit on an object key.

# Unicode general categories a key never needs, with what to call them in an error.
# https://www.unicode.org/reports/tr44/#General_Category_Values
_REFUSED_CATEGORIES = {
    "Cc": "control characters (newlines, tabs, NUL)",
    "Cs": "invalid Unicode (lone surrogates)",
    "Cf": "invisible formatting characters (bidirectional overrides, zero-width characters)",
    "Zl": "line separators",
    "Zp": "paragraph separators",
    "Co": "private-use characters",
}
_NONCHARACTERS = "Unicode noncharacters"


class InvalidKey(ValueError):
    """A key or text breaks a rule; the message says which and where."""


def describe_code_point(ch: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE', or 'U+000A (control character)' for unnamed ones."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X} ({_kind_of(ch)})"


def _kind_of(ch: str) -> str:
    category = unicodedata.category(ch)
    return {"Cc": "control character", "Cs": "surrogate", "Co": "private use"}.get(
        category, "unassigned"
    )


def _is_noncharacter(ch: str) -> bool:
    """U+FDD0..U+FDEF and the last two code points of every plane are never characters."""
    code = ord(ch)
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE


def _problem(ch: str, categories: dict[str, str]) -> str | None:
    if _is_noncharacter(ch):
        return _NONCHARACTERS
    return categories.get(unicodedata.category(ch))


def _check_characters(value: str, field: str, categories: dict[str, str]) -> str:
    for position, ch in enumerate(value):
        if (what := _problem(ch, categories)) is not None:
            raise InvalidKey(
                f"{field} must not contain {what} "
                f"(found {describe_code_point(ch)} at position {position})"
            )
    return value


def check_text(value: str, field: str) -> str:
    """Refuse text no database or S3 call can carry: control characters, lone surrogates."""
    only = {c: _REFUSED_CATEGORIES[c] for c in ("Cc", "Cs")}
    return _check_characters(value, field, only)


def check_key(key: str, field: str = "key", *, allow_empty: bool = False) -> str:
    """Return ``key`` if it is a safe S3 key (or prefix); raise InvalidKey saying why not."""
    if not key:
        if allow_empty:
            return key
        raise InvalidKey(f"{field} is empty; give an S3 object key such as 'videos/clip.mp4'")
    _check_characters(key, field, _REFUSED_CATEGORIES)
    if key.startswith("/"):
        raise InvalidKey(
            f"{field} must not start with '/': S3 keys are relative (use {key.lstrip('/')!r})"
        )
    if any(segment == ".." for segment in key.split("/")):
        raise InvalidKey(f"{field} must not contain '..' segments; S3 keys are not paths")
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise InvalidKey(
            f"{field} is {size} bytes in UTF-8; S3 keys are at most {MAX_KEY_BYTES} bytes"
        )
    return key


def is_valid_key(key: str) -> bool:
    """True when ``key`` passes ``check_key``."""
    try:
        check_key(key)
    except InvalidKey:
        return False
    return True


def _key(value: str, info: ValidationInfo) -> str:
    return check_key(value, info.field_name or "key")


def _prefix(value: str, info: ValidationInfo) -> str:
    return check_key(value, info.field_name or "prefix", allow_empty=True)


S3Key = Annotated[str, AfterValidator(_key)]
"""A non-empty S3 object key (or an HLS output prefix ending in '/')."""
S3Prefix = Annotated[str, AfterValidator(_prefix)]
"""An S3 key prefix; empty means the whole bucket."""
