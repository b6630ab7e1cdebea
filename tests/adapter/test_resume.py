"""The envelope protocol's recovery in the reconnecting client (wsdaemon.adapter.resume, docs/recovery.md §5).

The resumption alone is fed envelopes as strings; through a
:class:`ReconnectingClient` the server's frames are written by hand on the
fake network of test_reconnect, so no socket is opened.
"""

from __future__ import annotations

import json

import pytest

from tests.adapter.test_reconnect import CLOSE, TEXT, Session
from tests.helpers import server_frame
from wsdaemon.adapter.reconnect import ResumeFailed
from wsdaemon.adapter.resume import EnvelopeResumption
from wsdaemon.hub import Notice, NoticeType

EPOCH, OTHER = "e1", "e2"


def message(offset: int, data: str, epoch: str = EPOCH) -> str:
    """A published text message's envelope."""
    return json.dumps({"channel": "/chat/x", "epoch": epoch, "offset": offset, "data": data})


def notice(kind: str, offset: int, epoch: str = EPOCH, reason: str | None = None) -> str:
    """A notice's envelope."""
    fields = {"type": kind, "channel": "/chat/x", "epoch": epoch, "offset": offset}
    if reason is not None:
        fields["reason"] = reason
    return json.dumps(fields)


def test_first_connection_uses_the_url_as_given():
    """No position yet and no history asked: the URL is unchanged."""
    assert EnvelopeResumption().url("ws://h/chat/x?token=t") == "ws://h/chat/x?token=t"


def test_history_asks_for_since_zero_on_the_first_connection():
    """history=True: a first visit asks for what the channel still keeps."""
    assert EnvelopeResumption(history=True).url("ws://h/chat/x") == "ws://h/chat/x?since=0"


def test_reconnect_asks_from_the_last_position_keeping_other_parameters():
    """After messages, the URL carries since and epoch of the last one, beside the token and without old ones."""
    resume = EnvelopeResumption()
    for text in (notice("subscribed", 4), message(5, "a"), message(6, "b")):
        resume.received(text)
    assert resume.url("ws://h/chat/x?token=t&since=1&epoch=old") == "ws://h/chat/x?token=t&since=6&epoch=e1"


def test_messages_are_unwrapped_and_notices_swallowed():
    """The user gets what was published (text as str, binary as bytes), never a notice or a heartbeat."""
    resume = EnvelopeResumption()
    binary = json.dumps({"channel": "/chat/x", "epoch": EPOCH, "offset": 2, "b64": "AAH+/w=="})
    got = [
        resume.received(text) for text in (notice("subscribed", 0), message(1, "hé"), binary, notice("heartbeat", 2))
    ]
    assert got == [None, "hé", b"\x00\x01\xfe\xff", None]
    assert resume.position == (EPOCH, 2)


def test_duplicates_are_dropped():
    """A message at or before the position in the same epoch is not delivered twice."""
    resume = EnvelopeResumption()
    resume.received(notice("recovered", 3))
    assert [resume.received(message(n, str(n))) for n in (4, 4, 2, 5)] == ["4", None, None, "5"]


def test_not_recovered_is_told_with_its_reason_and_moves_to_the_new_epoch():
    """A not_recovered notice reaches on_notice; what follows in the new epoch is delivered."""
    told: list[Notice] = []
    resume = EnvelopeResumption(told.append)
    resume.received(notice("subscribed", 7))
    resume.received(notice("not_recovered", 0, OTHER, "epoch_changed"))
    assert resume.received(message(1, "after restart", OTHER)) == "after restart"
    assert [(n.type, n.reason) for n in told] == [
        (NoticeType.SUBSCRIBED, None),
        (NoticeType.NOT_RECOVERED, "epoch_changed"),
    ]
    assert resume.position == (OTHER, 1)


def test_heartbeats_are_not_told():
    """on_notice hears how the stream starts and gaps, not every heartbeat."""
    told: list[Notice] = []
    resume = EnvelopeResumption(told.append)
    resume.received(notice("heartbeat", 0))
    assert told == []


def test_unknown_notice_types_are_ignored():
    """A newer server's notice type is skipped and leaves the position alone."""
    resume = EnvelopeResumption()
    resume.received(notice("subscribed", 1))
    assert resume.received(notice("shiny", 9)) is None
    assert resume.position == (EPOCH, 1)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        json.dumps([1]),
        message(3, "skips offset 2"),
        message(2, "another epoch without notice", OTHER),
    ],
)
def test_protocol_errors_raise_resume_failed(text):
    """Not an envelope, a gap without notice, an epoch change without notice: ResumeFailed."""
    resume = EnvelopeResumption()
    resume.received(notice("subscribed", 0))
    resume.received(message(1, "one"))
    with pytest.raises(ResumeFailed):
        resume.received(text)
    assert resume.position == (EPOCH, 1)


def test_binary_frames_are_a_protocol_error():
    """An envelope endpoint sends only text."""
    with pytest.raises(ResumeFailed, match="binary"):
        EnvelopeResumption().received(b"\x00")


def test_reconnecting_client_resumes_with_since_and_epoch():
    """Through the client: the second connection asks from the last message; replayed ones are not repeated."""
    told: list[Notice] = []
    session = Session(resumption=EnvelopeResumption(told.append))
    attempt = session.open()
    assert attempt.request_target() == "/feed"
    for text in (notice("subscribed", 9), message(10, "ten"), message(11, "eleven")):
        attempt.send(server_frame(TEXT, text.encode()))
    attempt.drop()
    session.wait_out_backoff()
    again = session.open()
    assert again.request_target() == "/feed?since=11&epoch=e1"
    for text in (notice("recovered", 11), message(11, "eleven"), message(12, "twelve")):
        again.send(server_frame(TEXT, text.encode()))
    texts = [value for kind, value in session.handler.log if kind == "text"]
    assert texts == ["ten", "eleven", "twelve"]
    assert [n.type for n in told] == [NoticeType.SUBSCRIBED, NoticeType.RECOVERED]


def test_reconnecting_client_fails_an_out_of_sequence_stream_with_1002_and_resumes():
    """A gap the server did not announce closes with 1002, then the client reconnects from the last good offset."""
    session = Session(resumption=EnvelopeResumption())
    attempt = session.open()
    for text in (notice("subscribed", 0), message(1, "one"), message(5, "five")):
        attempt.send(server_frame(TEXT, text.encode()))
    (close,) = attempt.frames()
    assert close[1] == CLOSE and close[2][:2] == (1002).to_bytes(2, "big")
    attempt.close_from_server(1002)
    session.wait_out_backoff()
    assert session.open().request_target() == "/feed?since=1&epoch=e1"
    assert [value for kind, value in session.handler.log if kind == "text"] == ["one"]
