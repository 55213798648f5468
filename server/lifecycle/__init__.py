"""One chat request from admission to its last byte: its lifecycle and where its outcome goes."""
