"""A real llama.cpp server that cannot start fails fast, with its own explanation."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.processes import LlamaServerSpec, ServerStartError, free_port, llama_server

pytestmark = pytest.mark.slow


def test_a_broken_model_file_is_reported_with_the_server_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a GGUF file")
    server = llama_server(LlamaServerSpec("broken", broken, "broken", free_port()), tmp_path)
    server.start()
    try:
        with pytest.raises(ServerStartError, match="exited with status") as info:
            server.wait_ready(120)
    finally:
        server.stop()
    message = str(info.value)
    assert "llama.cpp server 'broken'" in message
    assert str(tmp_path / "broken.log") in message
    assert "broken.gguf" in message  # the server's own error, from its log tail
