"""The SSE splitter and event helpers: verbatim events, odd chunking, CRLF, comments, usage."""

from __future__ import annotations

import pytest

from server.upstream import SSESplitter, Usage, event_data, is_done, usage_event
from server.upstream.sse import is_comment

STREAM = (
    b": keep-alive\n\n"
    b'data: {"choices":[{"delta":{"content":"Caf\xc3\xa9 \xe2\x82\xac"}}],"usage":null}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n'
    b"data: [DONE]\n\n"
)


def split_all(chunks: list[bytes]) -> list[bytes]:
    splitter = SSESplitter()
    events = [event for chunk in chunks for event in splitter.feed(chunk)]
    rest = splitter.flush()
    return [*events, rest] if rest is not None else events


def test_whole_stream_splits_into_verbatim_events() -> None:
    events = split_all([STREAM])
    assert len(events) == 4
    assert b"".join(events) == STREAM
    assert is_comment(events[0])
    assert is_done(events[3])
    assert not is_done(events[1])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert split_all(chunks) == split_all([STREAM])


def test_split_inside_a_multibyte_character() -> None:
    cut = STREAM.index(b"\xe2\x82\xac") + 1  # in the middle of the euro sign
    events = split_all([STREAM[:cut], STREAM[cut:]])
    assert events == split_all([STREAM])
    data = event_data(events[1])
    assert data is not None
    assert "Café €" in data.decode()


def test_crlf_and_lone_cr_line_endings() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    events = split_all([crlf[i : i + 3] for i in range(0, len(crlf), 3)])
    assert len(events) == 4
    assert b"".join(events) == crlf
    assert is_done(events[3])
    assert usage_event(events[2]) is not None
    cr = STREAM.replace(b"\n", b"\r")
    events = split_all([cr[i : i + 2] for i in range(0, len(cr), 2)])
    assert len(events) == 4
    assert is_done(events[3])


def test_trailing_cr_waits_for_a_possible_lf() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b"data: a\r\n\r") == []  # the CR may be half of a CRLF
    assert splitter.feed(b"\ndata: b\r\n\r\n") == [b"data: a\r\n\r\n", b"data: b\r\n\r\n"]
    assert splitter.flush() is None


def test_unterminated_tail_is_flushed() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b"data: a\n\ndata: b") == [b"data: a\n\n"]
    assert splitter.flush() == b"data: b"
    assert splitter.flush() is None


def test_event_data_joins_lines_and_skips_comments_and_other_fields() -> None:
    event = b": note\nevent: message\nid: 4\ndata: first\ndata:second\ndata\n\n"
    assert event_data(event) == b"first\nsecond\n"
    assert event_data(b": only a comment\n\n") is None
    assert event_data(b"data: x\n\n") == b"x"


def test_usage_is_parsed_only_from_usage_objects() -> None:
    assert usage_event(b'data: {"choices":[{"delta":{}}],"usage":null}\n\n') is None
    assert usage_event(b'data: {"choices":[{"delta":{"content":"\\"usage\\": {"}}]}\n\n') is None
    found = usage_event(
        b'data: {"choices":[],"usage": {"prompt_tokens":7,"completion_tokens":3}}\n\n'
    )
    assert found is not None
    assert found.usage == Usage(7, 3)
    assert found.usage_only
    in_last_chunk = usage_event(
        b'data: {"choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'
    )
    assert in_last_chunk is not None
    assert not in_last_chunk.usage_only
    assert usage_event(b'data: {"usage": {broken\n\n') is None
    assert usage_event(b'data: {"usage": {"prompt_tokens": "x"}}\n\n') is None
