"""ARI events as small typed records, parsed once where they arrive.

Asterisk sends each event as a JSON object whose ``type`` names it
(``StasisStart``, ``ChannelDestroyed``…). :func:`parse` turns the ones an
application takes into the records below, each carrying only the fields
the service reads, under the names ARI gives them; the class of a record
is named after its ARI type. What an application takes is its own table
(``calls/stasis.py`` ``ROUTES``), whose types are also the event filter
sent to Asterisk, so the events asked for and the events handled are the
same list.

Values are kept as Asterisk sent them (a ``cause`` is the Q.850 number, or
None when absent); a missing channel reads as a channel with id ``""``.
Docs: Asterisk 22's ARI event reference (docs/decisions/0001-ari-client.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Channel:
    """An ARI channel object: ``id``, ``name`` (``PJSIP/1001-00000002``),
    ``state`` (``Up``, ``Ringing``…), ``exten`` (its dialplan extension)."""

    id: str = ""
    name: str = ""
    state: str = ""
    exten: str = ""

    @classmethod
    def from_json(cls, obj: Any) -> Channel:
        """The channel of an ARI channel object (``{}`` or None: id ``""``)."""
        obj = obj if isinstance(obj, dict) else {}
        return cls(id=obj.get("id") or "", name=obj.get("name") or "", state=obj.get("state") or "",
                   exten=(obj.get("dialplan") or {}).get("exten") or "")


@dataclass(frozen=True)
class AriEvent:
    """An event about one channel, its ``channel`` (for ``Dial``, the dialled
    ``peer``); ``caller_id``: the calling channel of a ``Dial`` (``""`` for
    every other event)."""

    channel: Channel = field(default_factory=Channel)
    #: the fields read from the JSON event besides ``channel`` (name → default)
    FIELDS: ClassVar[dict[str, Any]] = {}

    @property
    def caller_id(self) -> str:
        """The calling channel's id of a ``Dial``; ``""`` here."""
        return ""

    @classmethod
    def from_json(cls, event: dict) -> AriEvent:
        """The record of one JSON event of this type."""
        values = {name: event.get(name, default) for name, default in cls.FIELDS.items()}
        return cls(channel=Channel.from_json(event.get("channel")), **values)


@dataclass(frozen=True)
class StasisStart(AriEvent):
    """A channel entered the app; ``args``: the ``Stasis()`` / originate arguments;
    ``replace_channel``: the channel it took the place of in a bridge of the app
    (a transfer's Local channel; id ``""`` when none)."""

    args: tuple = ()
    replace_channel: Channel = field(default_factory=Channel)

    @classmethod
    def from_json(cls, event: dict) -> StasisStart:
        return cls(channel=Channel.from_json(event.get("channel")), args=tuple(event.get("args") or ()),
                   replace_channel=Channel.from_json(event.get("replace_channel")))


@dataclass(frozen=True)
class StasisEnd(AriEvent):
    """A channel left the app (hung up, or handed back to the dialplan)."""


@dataclass(frozen=True)
class ChannelStateChange(AriEvent):
    """The channel's ``state`` changed (``Ringing``, ``Up``…)."""


@dataclass(frozen=True)
class ChannelDestroyed(AriEvent):
    """The channel is gone; ``cause``: its Q.850 hangup cause, ``tech_cause``: the
    SIP response code that ended it, when there was one."""

    cause: Any = None
    tech_cause: Any = None
    FIELDS: ClassVar[dict[str, Any]] = {"cause": None, "tech_cause": None}


@dataclass(frozen=True)
class ChannelHangupRequest(AriEvent):
    """A hangup was asked for the channel; ``soft``: asked by the dialplan's own
    ``Hangup()`` or the end of a bridge, not by the channel's far side."""

    cause: Any = None
    tech_cause: Any = None
    soft: Any = None
    FIELDS: ClassVar[dict[str, Any]] = {"cause": None, "tech_cause": None, "soft": None}


@dataclass(frozen=True)
class ChannelDtmfReceived(AriEvent):
    """A DTMF ``digit`` was received on the channel."""

    digit: str = ""

    @classmethod
    def from_json(cls, event: dict) -> ChannelDtmfReceived:
        return cls(channel=Channel.from_json(event.get("channel")), digit=str(event.get("digit", "")))


@dataclass(frozen=True)
class ChannelUserevent(AriEvent):
    """The dialplan's ``UserEvent(eventname,key: value…)`` on the channel; ``userevent``
    holds the keys and values."""

    eventname: str = ""
    userevent: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, event: dict) -> ChannelUserevent:
        userevent = event.get("userevent")
        return cls(channel=Channel.from_json(event.get("channel")), eventname=event.get("eventname") or "",
                   userevent=userevent if isinstance(userevent, dict) else {})


@dataclass(frozen=True)
class Dial(AriEvent):
    """A dial from ``caller`` to ``peer`` (the dialled channel, also ``channel``)
    progressed; ``dialstatus``: ``""`` while ringing, then ``ANSWER``, ``BUSY``…"""

    caller: Channel = field(default_factory=Channel)
    dialstatus: str = ""

    @property
    def caller_id(self) -> str:
        """The calling channel's id."""
        return self.caller.id

    @classmethod
    def from_json(cls, event: dict) -> Dial:
        return cls(channel=Channel.from_json(event.get("peer")), caller=Channel.from_json(event.get("caller")),
                   dialstatus=event.get("dialstatus") or "")


def parse(event: dict, known: Mapping[str, type[AriEvent]]) -> AriEvent | None:
    """The record of a JSON ``event`` whose ``type`` is in ``known`` (type → record
    class), or None for any other event. Never raises on a well-formed JSON object."""
    cls = known.get(event.get("type")) if isinstance(event, dict) else None
    return None if cls is None else cls.from_json(event)
