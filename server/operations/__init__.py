"""Recent requests' traces, kept in the shared store for the key that made them."""
