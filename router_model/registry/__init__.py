"""The model registry: schema, loading with one-line errors, and per-profile views."""

from router_model.registry.deployment import Deployment, RetryPolicy
from router_model.registry.loader import RegistryError, parse_registry, read_registry_file
from router_model.registry.pricing import Pricing
from router_model.registry.registry import Registry
from router_model.registry.schema import (
    Decoding,
    Endpoint,
    MatchRule,
    ModelLimits,
    ModelSpec,
    PolicyEngine,
    ProfileLimits,
    RegistryFile,
    RouterProfile,
    SamplingDefaults,
)

__all__ = [
    "Decoding",
    "Deployment",
    "Endpoint",
    "MatchRule",
    "ModelLimits",
    "ModelSpec",
    "PolicyEngine",
    "Pricing",
    "ProfileLimits",
    "Registry",
    "RegistryError",
    "RegistryFile",
    "RetryPolicy",
    "RouterProfile",
    "SamplingDefaults",
    "parse_registry",
    "read_registry_file",
]
