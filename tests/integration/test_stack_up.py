"""``router-r1 up``: the whole local stack as a user starts it, then Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from local_stack.processes import free_port
from local_stack.stack import LOCAL_PROFILE, PLUMBING_PROFILE

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 240.0


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_serves_then_stops_every_child_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "up.log"
    with output.open("wb") as log:
        up = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from router_r1.cli import main; main()",
                "up",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Press Ctrl-C" not in output.read_text():
            assert up.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        text = output.read_text()
        assert "==> ready in " in text  # the time to ready, printed
        assert f'OpenAI(base_url="{base_url}"' in text
        assert f"curl -s {base_url}/chat/completions" in text
        ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=30).json()
        assert ready["policy_engines"] == {LOCAL_PROFILE: True, PLUMBING_PROFILE: True}
        client = openai.OpenAI(base_url=base_url, api_key="local", max_retries=0, timeout=120)
        listed = {m.id: m for m in client.models.list()}
        # the default profile says what its policy is: prompted, not an RL-trained checkpoint
        router = (listed[LOCAL_PROFILE].model_extra or {})["router"]
        assert "PROMPTED" in router["description"]
        reply = client.chat.completions.create(
            model="SmolLM2-135M-Instruct",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
        )
        assert reply.choices[0].message.content
        assert reply.usage is not None
        assert reply.usage.completion_tokens > 0
        children = _children(up.pid)
        assert len(children) == 3  # two llama-servers (Qwen2.5, SmolLM2) and the proxy
    finally:
        up.send_signal(signal.SIGINT)
        try:
            status = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert status == 0, output.read_text()
    assert "==> stopping" in output.read_text()
    for child in children:
        assert not _alive(child), f"child {child} still running after Ctrl-C"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
