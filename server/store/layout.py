"""Store key names, shared by both stores, laid out for Redis Cluster hash slots.

A Redis Cluster runs a Lua script or a MULTI only when all its keys are in one hash slot; a
key's slot is that of its *hash tag*, the part between the first ``{`` and the next ``}``. So
every key one atomic operation touches carries the same tag:

- ``lim:{<subject>}:...``: a key's request/token counters, spend and budget holds;
- ``mdl:{<model>}:...``: a model's per-minute counters;
- ``trace:{<owner>}:<request id>``, ``trsum:{<owner>}:<request id>``, ``trix:{<owner>}``: an
  owner's traces, their summaries and its index (one slot per owner);
- ``trix:all`` (everyone's index) and ``trown:{<request id>}`` (the owners of a request id)
  are single keys, written next to the owner's, not atomically with them.

Tags are escaped (``%``, ``{``, ``}`` percent-encoded; the empty name is ``%``) so any name
makes a whole tag. Before hash tags, the keys were ``lim:<subject>:...`` and
``trace:<request id>``: counters and traces of a gateway upgraded across that change start
afresh. An operator prefix with its own tag (``{router-r1}:``) puts every key in one slot.
"""

from __future__ import annotations

from server.store.windows import Window

GLOBAL_TRACE_INDEX = "trix:all"


def tag(name: str) -> str:
    """``name`` as a whole hash tag, braces included."""
    if not name:
        return "{%}"
    escaped = name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "{" + escaped + "}"


def counter_keys(subject: str, minute: Window, period: Window) -> tuple[str, str, str]:
    """Keys of (requests this minute, tokens this minute, spend this period)."""
    subject_tag = tag(subject)
    return (
        f"lim:{subject_tag}:{minute.id}:req",
        f"lim:{subject_tag}:{minute.id}:tok",
        f"lim:{subject_tag}:{period.id}:usd",
    )


def holds_keys(subject: str, period_id: str) -> tuple[str, str, str]:
    """The budget reservations held in a period: (reservation id -> USD, reservation id ->
    expiry in ms, their total USD)."""
    base = f"lim:{tag(subject)}:{period_id}"
    return f"{base}:hold", f"{base}:hexp", f"{base}:held"


def model_keys(model: str, minute: Window) -> tuple[str, str]:
    """Keys of a model's (requests, tokens) this minute."""
    model_tag = tag(model)
    return f"mdl:{model_tag}:{minute.id}:req", f"mdl:{model_tag}:{minute.id}:tok"


def trace_key(owner: str, request_id: str) -> str:
    return f"trace:{tag(owner)}:{request_id}"


def summary_key(owner: str, request_id: str) -> str:
    return f"trsum:{tag(owner)}:{request_id}"


def owner_trace_index(owner: str) -> str:
    """An owner's request ids, scored by ``created`` (ms)."""
    return f"trix:{tag(owner)}"


def request_owners_key(request_id: str) -> str:
    """The owners that stored a trace under ``request_id``, scored by ``created`` (ms)."""
    return f"trown:{tag(request_id)}"


def index_member(owner: str, request_id: str) -> str:
    """A member of the global index (key ids never contain a newline)."""
    return f"{owner}\n{request_id}"


def split_index_member(member: str) -> tuple[str, str]:
    owner, _, request_id = member.partition("\n")
    return owner, request_id
