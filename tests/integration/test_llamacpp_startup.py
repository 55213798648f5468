"""A real llama-server that cannot start fails fast, with its own explanation."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.llama_server_process import LlamaServerOptions, managed_llama_server
from local_stack.processes import ServerStartError, free_port

pytestmark = pytest.mark.slow


def test_a_broken_model_file_is_reported_with_the_server_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a GGUF file")
    server = managed_llama_server(LlamaServerOptions("broken", broken, free_port()), tmp_path)
    server.start()
    try:
        with pytest.raises(ServerStartError, match="exited with status") as info:
            server.wait_ready(120)
    finally:
        server.stop()
    message = str(info.value)
    assert "llama-server 'broken'" in message
    assert str(tmp_path / "broken.log") in message
    assert "broken.gguf" in message  # the server's own error, from its log tail
