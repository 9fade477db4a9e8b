"""The CLID pools' part of the OpenAPI description (SPEC §12, ``GET /click2dial/clids``),
merged into the one document of ``http/openapi.py``."""

from __future__ import annotations

from platforma_c2d import contract, rules
from platforma_c2d.config.pools import FALLBACKS, POLICIES

P = contract.PREFIX


def schemas(_ref) -> dict:
    """Schemas of ``GET /click2dial/clids`` (SPEC §12); ``_ref(name)``: a reference to a named schema."""
    nullable_iso = {"type": ["string", "null"], "format": "date-time"}
    return {
        "ClidNumber": {
            "type": "object",
            "required": ["number", "calls_today", "recent_calls", "answer_rate", "rested_until"],
            "properties": {
                "number": {"type": "string", "pattern": f"^(?:{rules.CLID_NUMBER_RE.pattern})$"},
                "calls_today": {"type": "integer", "minimum": 0,
                                "description": "Calls that presented this number today (UTC day)."},
                "recent_calls": {"type": "integer", "minimum": 0,
                                 "description": "Its recent calls that count for its health: answered, "
                                                "or refused or unanswered at the callee's side (at most "
                                                "the last 20 since its last rest)."},
                "answer_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                "description": "Share of those recent calls that were answered; null "
                                               "with none."},
                "rested_until": {**nullable_iso,
                                 "description": "While the number is rested for poor health: until "
                                                "when it is not drawn (still usable as an explicit "
                                                "outbound_id); else null."},
            },
        },
        "ClidPool": {
            "type": "object",
            "required": ["name", "policy", "fallback", "numbers"],
            "properties": {
                "name": {"type": "string", "description": "The pool's name (`default` is `[clid] pool`)."},
                "policy": {"type": "string", "enum": list(POLICIES)},
                "fallback": {"type": ["string", "null"], "enum": [*FALLBACKS, None],
                             "description": "For `sticky` and `area`: how a new callee, or one sharing "
                                            "no area, is served; else null."},
                "numbers": {"type": "array", "items": _ref("ClidNumber"),
                            "description": "In configuration (round-robin) order."},
            },
        },
        "ClidPools": {
            "type": "object",
            "required": ["pools"],
            "properties": {"pools": {"type": "array", "items": _ref("ClidPool")}},
        },
    }


def paths(_ref, _json, _R401: dict, _R429: dict, _R503: dict, _RDEFAULT: dict) -> dict:  # noqa: N803
    """``GET /click2dial/clids`` (SPEC §12); ``_ref``, ``_json`` and the shared responses
    come from :mod:`platforma_c2d.http.openapi`."""
    return {
        f"{P}/clids": {
            "get": {
                "operationId": "listClids",
                "tags": ["clids"],
                "summary": "CLID pools, their policies and each number's use and health",
                "description": "Every configured pool in configuration order, read from the store "
                               "(the same for every instance sharing it). A token limited to "
                               "some agents sees only the pools its agents draw from.",
                "responses": {
                    "200": {"description": "The pools.",
                            "content": _json(_ref("ClidPools"))},
                    "401": _R401, "429": _R429, "503": _R503, "default": _RDEFAULT,
                },
            },
        },
    }
