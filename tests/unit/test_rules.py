"""The Click2Dial input rules of SPEC section 1, one test per rule and edge."""

from __future__ import annotations


import pytest

from platforma_c2d.rules import (
    AGENT_FORMATS,
    CALL_REF_FORMATS,
    CALL_REF_MAX,
    CALLEE_FORMATS,
    OUTBOUND_ID_FORMATS,
    CallRequest,
    RuleError,
    ValidationError,
    clean_call_ref,
    is_agent,
    is_callee_number,
    is_clid_number,
    is_extension,
    is_outbound_id,
    validate_call_request,
    validate_fields,
)

EXT = "1001"
CALLEE = "0111234567"
CLID = "0115550001"


def body(**fields: object) -> dict[str, object]:
    """A valid request body, with ``fields`` replacing or adding fields."""
    base: dict[str, object] = {
        "agent": EXT,
        "callee": CALLEE,
        "outbound_id": CLID,
        "call_ref": "ref-1",
    }
    base.update(fields)
    return base


def errors_of(request: object, **kwargs: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        validate_call_request(request, **kwargs)
    assert info.value.errors, "a ValidationError always names a field"
    return info.value.errors


# Values that are never valid for any number-like field: a value matches
# whole or not at all, ASCII digits only, strings only.
NOT_WHOLE_OR_NOT_ASCII = [
    pytest.param(CALLEE + "\n", id="trailing-newline"),
    pytest.param("\n" + CALLEE, id="leading-newline"),
    pytest.param(CALLEE + " ", id="trailing-space"),
    pytest.param(" " + CALLEE, id="leading-space"),
    pytest.param("011 1234567", id="inner-space"),
    pytest.param("+27123456789", id="leading-plus"),
    pytest.param("011-1234567", id="dash"),
    pytest.param("٠١١١٢٣٤٥٦٧", id="arabic-indic-digits"),
    pytest.param("０１１１２３４５６７", id="fullwidth-digits"),
    pytest.param("011123456٧", id="one-non-ascii-digit"),
    pytest.param("", id="empty"),
    pytest.param(111234567, id="json-number"),
    pytest.param(True, id="json-bool"),
    pytest.param(None, id="json-null"),
    pytest.param([CALLEE], id="json-array"),
    pytest.param({"n": CALLEE}, id="json-object"),
]


# ---------------------------------------------------------------- agent


@pytest.mark.parametrize("value", ["100", "999", "1000", "0123"])
def test_extension_is_3_to_4_digits(value):
    assert is_extension(value)
    assert is_agent(value)


@pytest.mark.parametrize("value", ["10", "12345", "1a2", "", "100\n", " 100"])
def test_extension_one_short_or_one_long_or_not_digits_is_refused(value):
    assert not is_extension(value)
    assert not is_agent(value)


@pytest.mark.parametrize("value", ["١٠٠", "１００", 100, None, True])
def test_extension_non_ascii_digits_or_non_string_is_refused(value):
    assert not is_extension(value)


@pytest.mark.parametrize(
    "value", ["0111234567", "27123456789", "0012345678901", "0012345678901234"]
)
def test_agent_may_be_any_callee_number(value):
    assert is_agent(value)
    request = validate_call_request(body(agent=value))
    assert request.agent == value
    assert request.agent_is_external is True


def test_agent_extension_is_not_external():
    request = validate_call_request(body(agent="100"))
    assert request.agent_is_external is False


@pytest.mark.parametrize("value", ["12345", "011123456", "271234567890"])
def test_agent_neither_extension_nor_callee_number_is_refused(value):
    errors = errors_of(body(agent=value))
    assert set(errors) == {"agent"}
    assert AGENT_FORMATS in errors["agent"]


@pytest.mark.parametrize("value", NOT_WHOLE_OR_NOT_ASCII)
def test_agent_not_whole_string_of_ascii_digits_is_refused(value):
    assert not is_agent(value)
    assert set(errors_of(body(agent=value))) == {"agent"}


# ---------------------------------------------------------------- callee


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0" + "1" * 9, id="0+9-digits"),
        pytest.param("27" + "1" * 9, id="27+9-digits"),
        pytest.param("00" + "1" * 11, id="00+11-digits"),
        pytest.param("00" + "1" * 12, id="00+12-digits"),
        pytest.param("00" + "1" * 13, id="00+13-digits"),
        pytest.param("00" + "1" * 14, id="00+14-digits"),
    ],
)
def test_callee_each_allowed_prefix_and_length_is_accepted(value):
    assert is_callee_number(value)
    assert validate_call_request(body(callee=value)).callee == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0" + "1" * 8, id="0+8-digits-one-short"),
        pytest.param("0" + "1" * 10, id="0+10-digits-one-long"),
        pytest.param("27" + "1" * 8, id="27+8-digits-one-short"),
        pytest.param("27" + "1" * 10, id="27+10-digits-one-long"),
        pytest.param("00" + "1" * 10, id="00+10-digits-one-short"),
        pytest.param("00" + "1" * 15, id="00+15-digits-one-long"),
        pytest.param("1" * 10, id="other-prefix-10-long"),
        pytest.param("28" + "1" * 9, id="other-prefix-11-long"),
        pytest.param("27", id="prefix-only"),
    ],
)
def test_callee_one_short_one_long_or_other_prefix_is_refused(value):
    assert not is_callee_number(value)
    errors = errors_of(body(callee=value))
    assert set(errors) == {"callee"}
    assert CALLEE_FORMATS in errors["callee"]


def test_callee_00_prefix_10_long_is_valid_as_0_plus_9_digits():
    # The formats are an OR: "00" + 8 digits is also "0" + 9 digits.
    assert is_callee_number("0012345678")
    # ... but "00" + 9 or 10 digits (11, 12 long) matches no format.
    assert not is_callee_number("00123456789")
    assert not is_callee_number("001234567890")


@pytest.mark.parametrize("value", NOT_WHOLE_OR_NOT_ASCII)
def test_callee_not_whole_string_of_ascii_digits_is_refused(value):
    assert not is_callee_number(value)
    assert set(errors_of(body(callee=value))) == {"callee"}


def test_callee_json_number_is_refused_even_if_digits_would_match():
    errors = errors_of(body(callee=27123456789))
    assert "must be a string" in errors["callee"]
    assert "number" in errors["callee"]


# ---------------------------------------------------------------- outbound_id


@pytest.mark.parametrize(
    "value", ["random", "0" + "1" * 9, "27" + "1" * 9]
)
def test_outbound_id_random_or_clid_number_is_accepted(value):
    assert is_outbound_id(value)
    assert validate_call_request(body(outbound_id=value)).outbound_id == value


@pytest.mark.parametrize(
    "value", ["Random", "RANDOM", "random ", " random", "random\n", "rand"]
)
def test_outbound_id_random_is_lower_case_exactly(value):
    assert not is_outbound_id(value)
    errors = errors_of(body(outbound_id=value))
    assert set(errors) == {"outbound_id"}
    assert OUTBOUND_ID_FORMATS in errors["outbound_id"]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0" + "1" * 8, id="0+8-digits-one-short"),
        pytest.param("0" + "1" * 10, id="0+10-digits-one-long"),
        pytest.param("27" + "1" * 8, id="27+8-digits-one-short"),
        pytest.param("27" + "1" * 10, id="27+10-digits-one-long"),
        pytest.param("00" + "1" * 11, id="00-callee-number-is-not-a-clid"),
    ],
)
def test_outbound_id_number_one_short_one_long_or_00_is_refused(value):
    assert not is_clid_number(value)
    assert not is_outbound_id(value)
    assert set(errors_of(body(outbound_id=value))) == {"outbound_id"}


def test_clid_number_does_not_include_random():
    assert not is_clid_number("random")


@pytest.mark.parametrize("value", NOT_WHOLE_OR_NOT_ASCII)
def test_outbound_id_not_whole_string_of_ascii_digits_is_refused(value):
    assert not is_outbound_id(value)
    assert set(errors_of(body(outbound_id=value))) == {"outbound_id"}


def test_outbound_id_missing_is_required_by_default():
    request = body()
    del request["outbound_id"]
    assert "required" in errors_of(request)["outbound_id"]


def test_outbound_id_missing_or_null_is_empty_when_not_required():
    request = body()
    del request["outbound_id"]
    assert validate_call_request(request, require_outbound_id=False).outbound_id == ""
    request = body(outbound_id=None)
    assert validate_call_request(request, require_outbound_id=False).outbound_id == ""


def test_outbound_id_invalid_is_refused_even_when_not_required():
    errors = errors_of(body(outbound_id="Random"), require_outbound_id=False)
    assert set(errors) == {"outbound_id"}


# ---------------------------------------------------------------- call_ref


def test_call_ref_letters_digits_and_punctuation_are_accepted():
    value = "AZaz09.-_~:"
    assert clean_call_ref(value) == value
    assert validate_call_request(body(call_ref=value)).call_ref == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("a b", id="space"),
        pytest.param("ab\n", id="trailing-newline"),
        pytest.param("a;b", id="semicolon"),
        pytest.param("a,b", id="comma"),
        pytest.param("a/b", id="slash"),
        pytest.param("a\"b", id="quote"),
        pytest.param("a\r\nX-Evil: 1", id="header-injection"),
        pytest.param("a+b", id="plus"),
        pytest.param("é", id="non-ascii-letter"),
        pytest.param("٠١٢", id="arabic-indic-digits"),
        pytest.param("０", id="fullwidth-digit"),
    ],
)
def test_call_ref_other_characters_are_refused(value):
    with pytest.raises(RuleError) as info:
        clean_call_ref(value)
    assert info.value.field == "call_ref"
    assert CALL_REF_FORMATS in info.value.message
    assert set(errors_of(body(call_ref=value))) == {"call_ref"}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(12, id="json-number"),
        pytest.param(False, id="json-bool"),
        pytest.param(["a"], id="json-array"),
    ],
)
def test_call_ref_must_be_a_string(value):
    errors = errors_of(body(call_ref=value))
    assert "must be a string" in errors["call_ref"]


@pytest.mark.parametrize("absent", ["missing", "null", "empty"])
def test_call_ref_missing_null_or_empty_means_no_ref(absent):
    request = body()
    if absent == "missing":
        del request["call_ref"]
    else:
        request["call_ref"] = None if absent == "null" else ""
    assert validate_call_request(request).call_ref == ""
    assert clean_call_ref("") == ""


@pytest.mark.parametrize(
    ("length", "kept"),
    [
        pytest.param(CALL_REF_MAX, CALL_REF_MAX, id="230-exact-unchanged"),
        pytest.param(CALL_REF_MAX + 1, CALL_REF_MAX, id="231-cut-to-230"),
        pytest.param(5000, CALL_REF_MAX, id="5000-cut-to-230"),
    ],
)
def test_call_ref_longer_than_230_is_cut_never_rejected(length, kept):
    value = ("abc-123:" * 1000)[:length]
    assert CALL_REF_MAX == 230
    assert clean_call_ref(value) == value[:kept]
    assert validate_call_request(body(call_ref=value)).call_ref == value[:kept]


def test_call_ref_characters_are_checked_over_the_whole_value_before_the_cut():
    value = "a" * 299 + " " + "a" * 100  # bad character at position 300
    with pytest.raises(RuleError) as info:
        clean_call_ref(value)
    assert "position 300" in info.value.message
    assert set(errors_of(body(call_ref=value))) == {"call_ref"}


# ---------------------------------------------------------------- contact_ref


def test_contact_ref_alone_becomes_call_ref():
    request = body(contact_ref="crm:42")
    del request["call_ref"]
    assert validate_call_request(request).call_ref == "crm:42"


def test_contact_ref_alone_is_cut_to_230():
    request = body(contact_ref="x" * 300)
    del request["call_ref"]
    assert validate_call_request(request).call_ref == "x" * CALL_REF_MAX


@pytest.mark.parametrize("empty", ["call_ref", "contact_ref"])
def test_an_empty_ref_beside_the_other_is_no_reference(empty):
    """"" means "no reference": it never conflicts with the other name."""
    other = "contact_ref" if empty == "call_ref" else "call_ref"
    request = validate_call_request(body(**{empty: "", other: "crm:44"}))
    assert request.call_ref == "crm:44"


def test_contact_ref_equal_to_call_ref_is_accepted():
    request = validate_call_request(body(call_ref="crm:42", contact_ref="crm:42"))
    assert request.call_ref == "crm:42"


def test_contact_ref_different_from_call_ref_is_refused():
    errors = errors_of(body(call_ref="crm:42", contact_ref="crm:43"))
    assert set(errors) == {"contact_ref"}
    assert "call_ref" in errors["contact_ref"]


def test_contact_ref_differing_only_after_230_is_still_different():
    common = "a" * CALL_REF_MAX
    errors = errors_of(body(call_ref=common + "b", contact_ref=common + "c"))
    assert set(errors) == {"contact_ref"}


def test_contact_ref_null_with_call_ref_is_not_a_conflict():
    assert validate_call_request(body(contact_ref=None)).call_ref == "ref-1"


def test_contact_ref_has_the_call_ref_character_rules():
    errors = errors_of(body(contact_ref="a b"))
    assert set(errors) == {"contact_ref"}
    assert CALL_REF_FORMATS in errors["contact_ref"]


# ---------------------------------------------------------------- the body


@pytest.mark.parametrize(
    "request_body",
    [
        pytest.param([], id="array"),
        pytest.param("agent=1001", id="string"),
        pytest.param(None, id="null"),
        pytest.param(42, id="number"),
    ],
)
def test_body_not_a_json_object_is_refused(request_body):
    assert set(errors_of(request_body)) == {"body"}


def test_body_valid_gives_the_call_request():
    assert validate_call_request(body()) == CallRequest(
        agent=EXT,
        agent_is_external=False,
        callee=CALLEE,
        outbound_id=CLID,
        call_ref="ref-1",
    )


def test_body_unknown_fields_are_each_named():
    errors = errors_of(body(Agent="1001", clid=CLID))
    assert set(errors) == {"Agent", "clid"}
    assert all("unknown field" in message for message in errors.values())


def test_body_unknown_field_name_is_escaped_and_cut():
    errors = errors_of(body(**{"x\r\nforged: log" + "y" * 100: 1}))
    (name,) = errors
    assert "\n" not in name and "\r" not in name
    assert len(name) < 80


@pytest.mark.parametrize("field", ["agent", "callee", "outbound_id"])
def test_body_missing_required_field_is_reported_as_required(field):
    request = body()
    del request[field]
    errors = errors_of(request)
    assert set(errors) == {field}
    assert errors[field].startswith("required")


@pytest.mark.parametrize("field", ["agent", "callee", "outbound_id"])
def test_body_null_required_field_is_refused(field):
    errors = errors_of(body(**{field: None}))
    assert set(errors) == {field}
    assert "null" in errors[field]


def test_body_every_invalid_field_is_reported_at_once():
    errors = errors_of(
        {
            "agent": "12",
            "callee": 111234567,
            "outbound_id": "RANDOM",
            "call_ref": "a b",
            "extra": "x",
        }
    )
    assert set(errors) == {"agent", "callee", "outbound_id", "call_ref", "extra"}


def test_body_empty_object_reports_every_required_field():
    assert set(errors_of({})) == {"agent", "callee", "outbound_id"}


# ---------------------------------------------------------------- messages


def test_message_names_the_accepted_formats():
    errors = errors_of(body(agent="x", callee="x", outbound_id="x", call_ref=" "))
    assert AGENT_FORMATS in errors["agent"]
    assert CALLEE_FORMATS in errors["callee"]
    assert OUTBOUND_ID_FORMATS in errors["outbound_id"]
    assert CALL_REF_FORMATS in errors["call_ref"]


def test_message_echoes_at_most_40_characters_of_the_value():
    errors = errors_of(body(callee="9" * 5000))
    assert "9" * 40 in errors["callee"]
    assert "9" * 41 not in errors["callee"]


def test_message_escapes_control_characters():
    errors = errors_of(body(callee="0111234567\nINFO forged line"))
    assert "\n" not in errors["callee"]
    assert "\\n" in errors["callee"]


def test_validation_error_is_a_value_error_with_every_field_in_its_text():
    error = ValidationError({"agent": "bad", "callee": "bad"})
    assert isinstance(error, ValueError)
    assert "agent" in str(error) and "callee" in str(error)


def test_rule_error_carries_field_and_message():
    error = RuleError("outbound_id", "bad")
    assert isinstance(error, ValueError)
    assert (error.field, error.message) == ("outbound_id", "bad")


# ---------------------------------------------------------------- validate_fields


def test_validate_fields_not_given_outbound_id_and_call_ref_are_empty():
    request = validate_fields(agent=EXT, callee=CALLEE, outbound_id=None, call_ref=None)
    assert request == CallRequest(EXT, False, CALLEE, "", "")


def test_validate_fields_cuts_call_ref_to_230():
    request = validate_fields(
        agent=EXT, callee=CALLEE, outbound_id="random", call_ref="r" * 231
    )
    assert request.call_ref == "r" * CALL_REF_MAX
    assert request.outbound_id == "random"


def test_validate_fields_external_agent():
    request = validate_fields(
        agent="27123456789", callee=CALLEE, outbound_id=CLID, call_ref=None
    )
    assert request.agent_is_external is True


def test_validate_fields_reports_every_invalid_field_at_once():
    with pytest.raises(ValidationError) as info:
        validate_fields(
            agent="1001\n", callee="+27123456789", outbound_id="Random", call_ref="a;b"
        )
    assert set(info.value.errors) == {"agent", "callee", "outbound_id", "call_ref"}


def test_validate_fields_empty_outbound_id_given_is_refused():
    with pytest.raises(ValidationError) as info:
        validate_fields(agent=EXT, callee=CALLEE, outbound_id="", call_ref=None)
    assert set(info.value.errors) == {"outbound_id"}
