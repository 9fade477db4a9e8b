"""The OpenAPI description (SPEC §2) agrees with the Flask routes and the input rules (SPEC §1)."""

from __future__ import annotations

import json
import re

import pytest

from platforma_c2d import contract, rules
from platforma_c2d.calls.model import Reason, State
from platforma_c2d.config import Config
from platforma_c2d.http.app import create_app
from platforma_c2d.http.openapi import openapi_document
from platforma_c2d.metrics import Metrics

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture(scope="module")
def doc() -> dict:
    return openapi_document()


@pytest.fixture(scope="module")
def app():
    return create_app(service=None, config=Config(), metrics=Metrics())


def _schema(doc: dict, name: str) -> dict:
    return doc["components"]["schemas"][name]


def _normalise(path: str) -> str:
    """``/calls/<call_id>`` (Flask) and ``/calls/{id}`` (OpenAPI) both become ``/calls/{}``."""
    return re.sub(r"<[^>]*>|\{[^}]*\}", "{}", path)


# --------------------------------------------------------------------------
# The document itself
# --------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(doc):
    validator = pytest.importorskip("openapi_spec_validator")
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    validator.validate(doc, cls=OpenAPIV31SpecValidator)


def test_document_is_json_and_versioned(doc):
    assert json.loads(json.dumps(doc)) == doc
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["version"] == contract.API_VERSION
    assert doc["servers"] and doc["servers"][0]["url"] == "/"


def test_no_openapi_3_0_nullable_is_left(doc):
    """3.1 is JSON Schema: nullability is a type list, never the 3.0 `nullable` keyword."""
    assert '"nullable"' not in json.dumps(doc)


def test_one_named_schema_per_enum_and_every_use_refers_to_it(doc):
    """A generator then makes one enum type, not one per field (Reason, State, Origin)."""
    for name, (enum, _meanings, _d) in contract.ENUMS.items():
        assert _schema(doc, name)["enum"] == [e.value for e in enum]
    text = json.dumps({k: v for k, v in doc["components"]["schemas"].items() if k not in contract.ENUMS})
    text += json.dumps(doc["paths"])
    for name, (enum, _meanings, _d) in contract.ENUMS.items():
        assert json.dumps([e.value for e in enum]) not in text, f"{name} written out again"


def test_the_path_id_has_its_pattern(doc):
    for path in ("/click2dial/calls/{id}", "/click2dial/calls/{id}/history"):
        (param,) = doc["paths"][path]["parameters"]
        assert param["schema"]["pattern"] == contract.CALL_ID_PATTERN


def test_each_call_returns_an_independent_copy():
    first = openapi_document()
    first["paths"].clear()
    first["components"]["schemas"]["Call"]["properties"].clear()
    again = openapi_document()
    assert "/click2dial/calls" in again["paths"]
    assert "id" in again["components"]["schemas"]["Call"]["properties"]


def test_served_at_openapi_json_without_auth(doc):
    from platforma_c2d.config import AuthConfig
    import dataclasses
    import hashlib

    config = dataclasses.replace(Config(), auth=AuthConfig(tokens_sha256=(hashlib.sha256(b"t").hexdigest(),)))
    client = create_app(service=None, config=config, metrics=Metrics()).test_client()
    resp = client.get("/click2dial/openapi.json")
    assert resp.status_code == 200
    assert resp.get_json() == doc
    assert client.get("/click2dial/calls").status_code == 401


# --------------------------------------------------------------------------
# Routes: every Flask route is described with the same methods, and back
# --------------------------------------------------------------------------


def _flask_routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        routes.setdefault(_normalise(rule.rule), set()).update(methods)
    return routes


def _doc_routes(doc) -> dict[str, set[str]]:
    return {_normalise(path): {m for m in item if m in HTTP_METHODS} for path, item in doc["paths"].items()}


def test_every_flask_route_is_described_with_its_methods(app, doc):
    flask_routes, described = _flask_routes(app), _doc_routes(doc)
    assert flask_routes, "no route found in the app"
    for path, methods in flask_routes.items():
        assert path in described, f"{path} is not in the OpenAPI document"
        assert described[path] == methods, path


def test_document_describes_no_route_the_app_lacks(app, doc):
    assert set(_doc_routes(doc)) == set(_flask_routes(app))


def test_path_parameters_are_declared(doc):
    for path, item in doc["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for method in HTTP_METHODS & set(item):
            declared |= {p["name"] for p in item[method].get("parameters", []) if p["in"] == "path"}
        assert names == declared, path


# --------------------------------------------------------------------------
# Security and responses
# --------------------------------------------------------------------------


def test_bearer_auth_everywhere_except_open_routes(doc):
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearerAuth": []}]
    open_routes = {"/click2dial/openapi.json", "/healthz", "/click2dial/rules",
                   # the pages (SPEC §13): HTML, assets and the login exchange itself
                   "/click2dial/phone/", "/click2dial/board/", "/click2dial/assets/{filename}",
                   "/click2dial/pages/session"}
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS & set(item):
            op = item[method]
            if path in open_routes:
                assert op.get("security") == [], path
            elif path == "/metrics":   # allowed addresses without a token, else the scrape token
                assert op["security"] == [{}, {"scrapeToken": []}] and "401" in op["responses"]
            elif path == "/click2dial/pages/config":  # the page session cookie, or the token
                assert op["security"] == [{"pageSession": []}, {"bearerAuth": []}]
                assert "401" in op["responses"]
            else:
                assert "security" not in op, (path, method)
                assert "401" in op["responses"], (path, method)


@pytest.mark.parametrize("path, method, statuses", [
    ("/click2dial/calls", "post", {"201", "400", "401", "403", "409", "413", "415", "422", "429", "503",
                                   "default"}),
    ("/click2dial/calls", "get", {"200", "400", "401", "429", "503", "default"}),
    ("/click2dial/calls/{id}", "get", {"200", "401", "404", "429", "503", "default"}),
    ("/click2dial/calls/{id}/history", "get", {"200", "401", "404", "429", "503", "default"}),
    ("/click2dial/calls/{id}", "delete", {"200", "401", "404", "409", "429", "503", "default"}),
    ("/click2dial/openapi.json", "get", {"200"}),
    ("/healthz", "get", {"200", "503"}),
    ("/metrics", "get", {"200", "401", "403"}),
    # The login form's body is read like a call's: not JSON is 415, bad JSON 400, too big 413.
    ("/click2dial/pages/session", "post", {"200", "400", "401", "413", "415", "429"}),
])
def test_responses(doc, path, method, statuses):
    responses = doc["paths"][path][method]["responses"]
    assert set(responses) == statuses
    for status, resp in responses.items():
        if (status == "default" or int(status) >= 400) and path.startswith("/click2dial/calls"):
            assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_post_headers(doc):
    post = doc["paths"]["/click2dial/calls"]["post"]
    assert set(post["responses"]["201"]["headers"]) == {"Location", "Idempotent-Replayed"}
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert "Retry-After" in post["responses"]["503"]["headers"]
    (key,) = [p for p in post["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and key["required"] is False
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 200)
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CallRequest"}


def test_list_parameters(doc):
    params = {p["name"]: p for p in doc["paths"]["/click2dial/calls"]["get"]["parameters"]}
    assert list(params) == list(contract.LIST_PARAMETERS)
    assert params["state"]["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/State"}}
    assert params["state"]["explode"] is True
    assert params["limit"]["schema"] == {**params["limit"]["schema"], "minimum": 1, "maximum": 200, "default": 50}
    for name in ("created_after", "created_before", "updated_after"):
        assert params[name]["schema"]["format"] == "date-time"
    assert set(_schema(doc, "CallList")["properties"]) == {"calls", "total", "total_exact", "limit", "next_cursor"}
    assert _schema(doc, "CallList")["properties"]["next_cursor"]["type"] == ["string", "null"]


# --------------------------------------------------------------------------
# Schemas agree with the code
# --------------------------------------------------------------------------


def test_call_schema_matches_to_dict(doc):
    from platforma_c2d.calls.model import Call, Origin

    call = Call(id="0" * 32, origin=Origin.REST, agent="1001", callee="0215550100",
                outbound_id="random", clid="0115550001", call_ref="x")
    props = _schema(doc, "Call")["properties"]
    assert list(props) == list(call.to_dict())
    assert set(_schema(doc, "Call")["required"]) == set(props)
    assert props["state"]["$ref"] == "#/components/schemas/State"
    assert _schema(doc, "Reason")["enum"] == [r.value for r in Reason] and len(Reason) == 10
    assert props["reason"]["anyOf"] == [{"$ref": "#/components/schemas/Reason"}, {"type": "null"}]
    assert _schema(doc, "Origin")["enum"] == ["rest", "webrtc", "agi"]
    assert props["created_at"]["type"] == "string"
    for name in ("answered_at", "ended_at"):
        assert props[name]["type"] == ["string", "null"] and props[name]["format"] == "date-time"
    assert re.fullmatch(props["id"]["pattern"].strip("^$"), call.id)


def test_call_request_schema(doc):
    schema = _schema(doc, "CallRequest")
    assert set(schema["properties"]) == {"agent", "callee", "outbound_id", "call_ref", "contact_ref",
                                         "status_callback"}
    assert set(schema["properties"]) == set(rules._BODY_FIELDS)
    assert schema["required"] == ["agent", "callee", "outbound_id"]
    assert schema["additionalProperties"] is False
    for name in ("call_ref", "contact_ref"):
        assert schema["properties"][name]["type"] == ["string", "null"]
    assert "230" in schema["properties"]["call_ref"]["description"]


def test_error_schema_lists_every_error_id(doc):
    from platforma_c2d.calls import errors

    error = _schema(doc, "Error")
    assert set(error["required"]) == {"error", "message", "details"}
    assert error["properties"]["details"]["type"] == "object"
    ids = {cls.error for cls in vars(errors).values()
           if isinstance(cls, type) and issubclass(cls, errors.C2DError) and cls is not errors.C2DError}
    ids |= {"request-too-large", "not-found", "method-not-allowed"}
    assert ids <= set(contract.ERRORS)
    for error_id in ids:
        assert f"`{error_id}`" in error["description"], error_id
        assert re.fullmatch(error["properties"]["error"]["pattern"].strip("^$"), error_id)


def test_health_schema(doc):
    health = _schema(doc, "Health")
    assert health["properties"]["status"]["enum"] == ["ok", "degraded"]
    assert health["properties"]["ari_connected"]["type"] == "boolean"
    assert health["properties"]["store_writable"]["type"] == "boolean"
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


# --------------------------------------------------------------------------
# Patterns agree with platforma_c2d.rules
#
# The document's patterns are ECMA-262 (JSON Schema) regexes anchored with
# ^...$, where $ matches only at the very end. Python's re differs: $ also
# matches just before a final "\n", so re.search(pattern, "0215550100\n")
# would wrongly accept. We therefore strip the ^/$ anchors and use
# re.fullmatch, which (like ECMA's $) requires the whole string to match.
# --------------------------------------------------------------------------

SAMPLES = [
    "1001", "100", "10", "10011", "0215550100", "021555010", "02155501000", "27215550100",
    "2721555010", "272155501000", "0012345678901", "001234567890", "00123456789012345",
    "0012345678901234", "random", "Random", "RANDOM", " random", "+27215550100", "0215550100\n",
    "1001\n", "random\n", " 1001", "10 01", "", "\u0661\u0660\u0660\u0661", "１００１", "1215550100",
]


def _python_regex(pattern: str) -> re.Pattern[str]:
    """The document's anchored pattern, for re.fullmatch (see the comment above)."""
    assert pattern.startswith("^") and pattern.endswith("$"), pattern
    return re.compile(pattern[1:-1])


def _pattern(doc, field: str) -> re.Pattern[str]:
    return _python_regex(_schema(doc, "CallRequest")["properties"][field]["pattern"])


@pytest.mark.parametrize("field, rule", [
    ("agent", rules.is_agent),
    ("callee", rules.is_callee_number),
    ("outbound_id", rules.is_outbound_id),
])
@pytest.mark.parametrize("value", SAMPLES)
def test_patterns_agree_with_rules(doc, field, rule, value):
    assert (_pattern(doc, field).fullmatch(value) is not None) is rule(value), (field, value)


def test_samples_cover_both_outcomes():
    for rule in (rules.is_agent, rules.is_callee_number, rules.is_outbound_id):
        outcomes = {rule(v) for v in SAMPLES}
        assert outcomes == {True, False}, rule


def test_python_dollar_pitfall_is_real(doc):
    """Why the tests above do not just re.match the pattern as written."""
    raw = _schema(doc, "CallRequest")["properties"]["callee"]["pattern"]
    assert re.match(raw, "0215550100\n") is not None          # Python's $ lets the newline through
    assert _pattern(doc, "callee").fullmatch("0215550100\n") is None
    assert not rules.is_callee_number("0215550100\n")


@pytest.mark.parametrize("value", [
    "", "CRM-4711", "a.b-c_d~e:f", "A" * 231, "ref 1", "ref/1", "ref\n", "réf", "ref;x", "ref\"x",
])
def test_call_ref_pattern_agrees_with_rules(doc, value):
    try:
        rules.clean_call_ref(value)
        valid = True
    except rules.RuleError:
        valid = False
    for field in ("call_ref", "contact_ref"):
        assert (_pattern(doc, field).fullmatch(value) is not None) is valid, (field, value)


def test_length_limits_agree_with_patterns(doc):
    props = _schema(doc, "CallRequest")["properties"]
    for field, rule in (("agent", rules.is_agent), ("callee", rules.is_callee_number),
                        ("outbound_id", rules.is_outbound_id)):
        lengths = [len(v) for v in SAMPLES if rule(v)]
        assert props[field]["minLength"] <= min(lengths)
        assert props[field]["maxLength"] >= max(lengths)
    assert "maxLength" not in props["call_ref"]  # length alone never rejects (cut to 230)


def test_schema_validates_samples_like_rules(doc):
    """With jsonschema (ECMA-like $), the CallRequest schema accepts exactly what rules accept."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = _schema(doc, "CallRequest")
    base = {"agent": "1001", "callee": "0215550100", "outbound_id": "random"}
    for field, rule in (("agent", rules.is_agent), ("callee", rules.is_callee_number),
                        ("outbound_id", rules.is_outbound_id)):
        validator = jsonschema.Draft4Validator(schema["properties"][field])
        for value in SAMPLES:
            if value.endswith("\n"):
                continue  # jsonschema runs the pattern with Python's re.search: the same $ pitfall
            assert validator.is_valid(value) is rule(value), (field, value)
    assert jsonschema.Draft4Validator(schema).is_valid(base)
    assert not jsonschema.Draft4Validator(schema).is_valid({**base, "extra": "1"})
    assert not jsonschema.Draft4Validator(schema).is_valid({"agent": "1001", "callee": "0215550100"})
