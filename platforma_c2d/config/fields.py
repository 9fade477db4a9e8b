"""How a config key is declared: :func:`option` (its default and the metadata the
loader reads), and the limits and their wording shared by the sections
(``config/schema.py``, ``config/cluster.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

from platforma_c2d.config.checks import _in_range


def option(
    default: Any,
    kind: str,
    desc: str,
    ok: Callable[[Any], bool] | None = None,
    *,
    item_ok: Callable[[str], bool] | None = None,
    item_desc: str = "",
    secret: bool = False,
    show: Callable[[Any], str] | None = None,
    norm: Callable[[Any], Any] | None = None,
) -> Any:
    """A config key: its default, its kind (str, int, float, bool, strs),
    what it must be (``desc``, for messages), its checks and handling."""
    meta = dict(kind=kind, desc=desc, ok=ok, item_ok=item_ok, item_desc=item_desc,
                secret=secret, show=show, norm=norm)
    return field(default=default, repr=not secret, metadata=meta)


YEAR_S = 31_536_000
HOUR_S = 3_600
_SECONDS = f"a positive integer (seconds, at most {YEAR_S}: a year)"
_FSECONDS = f"a positive number (seconds, at most {HOUR_S})"
_RING_SECONDS = f"a positive integer (seconds, at most {HOUR_S})"
_seconds = _in_range(0, YEAR_S)
_fseconds = _in_range(0, HOUR_S)
