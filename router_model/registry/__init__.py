"""The model registry: schema, loading with one-line errors, and per-profile views."""

from router_model.registry.loader import RegistryError, parse_registry, read_registry_file
from router_model.registry.registry import Registry
from router_model.registry.schema import (
    Decoding,
    Endpoint,
    MatchRule,
    ModelSpec,
    PolicyEngine,
    Pricing,
    ProfileLimits,
    RegistryFile,
    RouterProfile,
    SamplingDefaults,
)

__all__ = [
    "Decoding",
    "Endpoint",
    "MatchRule",
    "ModelSpec",
    "PolicyEngine",
    "Pricing",
    "ProfileLimits",
    "Registry",
    "RegistryError",
    "RegistryFile",
    "RouterProfile",
    "SamplingDefaults",
    "parse_registry",
    "read_registry_file",
]
