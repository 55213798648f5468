"""The pydantic schema of ``model_registry.yaml``: endpoints, models and router profiles."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router_model.registry.deployment import Deployment, RetryPolicy, single_deployment
from router_model.registry.pricing import MISSING_PRICING, Pricing

NonNegative = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]
ModelName = Annotated[str, Field(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    if ":" in value or "\n" in value:
        raise ValueError("must not contain ':' or a newline (the policy writes NAME:QUERY)")
    return value


class Endpoint(_Strict):
    """An OpenAI-compatible server: where to send requests and where its API key lives."""

    base_url: str
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the API key."
    )
    connect_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    read_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    max_connections: PositiveInt = 100

    @field_validator("base_url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("_", "").isalnum():
            raise ValueError("must be the name of an environment variable, never the key itself")
        return value


class SamplingDefaults(_Strict):
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_tokens: PositiveInt = 512
    seed: int | None = 42


class ModelLimits(_Strict):
    """Enforced by the gateway: a call whose prompt (estimated) plus its ``max_tokens`` does
    not fit in ``context_tokens`` is refused; the per-minute request and token limits hold
    across replicas (through the shared store)."""

    context_tokens: PositiveInt | None = None
    requests_per_minute: PositiveInt | None = None
    tokens_per_minute: PositiveInt | None = None


class ModelFacts(_Strict):
    """Optional descriptive facts; informational, shown by /v1/models."""

    parameters_b: NonNegative | None = None
    latency_ms_p50: NonNegative | None = None
    quality: str | None = None


class MatchRule(_Strict):
    """A loose-name rule: every ``all_of`` substring present and no ``none_of`` substring."""

    all_of: Annotated[tuple[str, ...], Field(min_length=1)]
    none_of: tuple[str, ...] = ()

    @field_validator("all_of", "none_of")
    @classmethod
    def _lowercase(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not part.strip() for part in value):
            raise ValueError("substrings must not be empty")
        return tuple(part.lower() for part in value)


class ModelSpec(_Strict):
    """A model of the routing pool, also reachable directly as a passthrough target.

    Served by ``deployments`` (written as such, or as one ``endpoint`` + ``upstream_model``:
    then ``deployments`` holds that one, named after the endpoint). ``fallbacks``: other
    registry models a passthrough request is sent to, in order, when this one fails before
    its first byte or the request is too long for it (see the registry file's header).
    """

    name: ModelName
    description: Annotated[str, Field(min_length=1)]
    endpoint: str | None = None
    upstream_model: Annotated[str, Field(min_length=1)] | None = None
    deployments: Annotated[tuple[Deployment, ...], Field(min_length=1)]
    pricing: Pricing = Pricing()
    defaults: SamplingDefaults = SamplingDefaults()
    limits: ModelLimits = ModelLimits()
    facts: ModelFacts = ModelFacts()
    retry: RetryPolicy = RetryPolicy()
    fallbacks: tuple[ModelName, ...] = ()
    aliases: tuple[ModelName, ...] = ()
    match: tuple[MatchRule, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _one_deployment_form(cls, data: Any) -> Any:
        return single_deployment(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _priced_and_distinct(self) -> ModelSpec:
        if not self.pricing.declared and any(d.pricing is None for d in self.deployments):
            raise ValueError(MISSING_PRICING)
        names = [d.name for d in self.deployments]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(
                    f"deployments: two are named {name!r} (give each deployment on one "
                    f"endpoint its own name)"
                )
        if len(set(self.fallbacks)) != len(self.fallbacks):
            raise ValueError("fallbacks: lists a model twice")
        return self

    def pricing_of(self, deployment: Deployment | None = None) -> Pricing:
        """What a call served by ``deployment`` costs: its own pricing, else the model's.
        Without a deployment (an estimate, the reference's raw cost): the model's, or, when
        only its deployments are priced, the first one's."""
        if deployment is not None and deployment.pricing is not None:
            return deployment.pricing
        if deployment is None and not self.pricing.declared:
            first = self.deployments[0].pricing
            if first is not None:
                return first
        return self.pricing

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("aliases")
    @classmethod
    def _valid_aliases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_name(alias) for alias in value)

    @field_validator("description")
    @classmethod
    def _one_paragraph(cls, value: str) -> str:
        if "\n\n" in value:
            raise ValueError("must be one paragraph (the prompt separates models by blank lines)")
        return value


HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")]


class PolicyEngine(_Strict):
    """Where the router policy is served: one ``endpoint``, or several ``endpoints`` serving
    the same checkpoint (replicas; each episode stays on one, see ``server.engines.replicas``).

    ``session_header``: the header naming the episode on every engine request (its value is
    the episode id), for a prefix-aware router in front of the engines; None = the gateway's
    ``ROUTER_R1_ENGINE_SESSION_HEADER``."""

    endpoint: str | None = None
    endpoints: tuple[str, ...] = ()
    model: Annotated[str, Field(min_length=1)]
    engine: Literal["vllm", "llamacpp"] = "vllm"
    pricing: Pricing = Pricing()
    session_header: HeaderName | None = None

    @model_validator(mode="after")
    def _one_way(self) -> PolicyEngine:
        if self.endpoint is not None and self.endpoints:
            raise ValueError("give endpoint (one server) or endpoints (replicas), not both")
        if self.endpoint is None and not self.endpoints:
            raise ValueError("endpoint (or endpoints, for replicas) is required")
        if len(set(self.endpoints)) != len(self.endpoints):
            raise ValueError("endpoints lists an endpoint twice")
        return self

    @property
    def replica_endpoints(self) -> tuple[str, ...]:
        """The endpoint names serving the policy (one for a single ``endpoint``)."""
        return (self.endpoint,) if self.endpoint is not None else self.endpoints


class Decoding(_Strict):
    """Policy decoding defaults (spec section 3: temperature 1.0, top_p 0.95)."""

    temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.95
    seed: int | None = None


class ProfileLimits(_Strict):
    """Turn and token limits of one episode (spec section 3), and the per-request caps
    (``max_cost_usd``, ``max_upstream_calls``: retries and a fallback included; a client may
    lower them for its request, see ``router_model.episode.caps``)."""

    max_routes: Annotated[int, Field(ge=0, le=32)] = 4
    max_turn_tokens: PositiveInt = 1024
    max_context_tokens: PositiveInt = 4096
    max_observation_tokens: PositiveInt = 600
    upstream_max_tokens: PositiveInt = 512
    deadline_s: Annotated[float, Field(gt=0)] = 300.0
    max_cost_usd: NonNegative | None = None
    max_upstream_calls: Annotated[int, Field(ge=0)] | None = None


FallbackCondition = Literal["engine_unavailable", "no_answer", "deadline_exceeded"]


class ProfileFallback(_Strict):
    """A registry model that answers the user's messages when the episode cannot, ``when`` one
    of the conditions listed holds: the policy engine is unavailable, the episode ended without
    an answer, or its deadline passed. (Not ``on``: YAML reads an unquoted ``on`` as true.)"""

    model: ModelName
    when: Annotated[tuple[FallbackCondition, ...], Field(min_length=1)] = (
        "engine_unavailable",
        "no_answer",
        "deadline_exceeded",
    )


class RouterProfile(_Strict):
    """What a client selects with ``model="<profile name>"``."""

    name: ModelName
    description: str = ""
    policy: PolicyEngine
    template: Literal["qwen", "llama"] = "qwen"
    pool: Annotated[tuple[ModelName, ...], Field(min_length=1)]
    decoding: Decoding = Decoding()
    limits: ProfileLimits = ProfileLimits()
    cost_coefficient: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.0, description="The alpha the checkpoint was trained with (informational)."
    )
    grammar: bool = Field(default=False, description="Constrain each turn to the action grammar.")
    fallback: ProfileFallback | None = None

    @field_validator("pool")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen = {v.lower() for v in value}
        if len(seen) != len(value):
            raise ValueError("lists a model twice")
        return value


class RegistryFile(_Strict):
    """The whole file, with the cross-reference checks."""

    version: Literal[1] = 1
    allow_empty: bool = Field(
        default=False,
        description="Serve this file even though it defines no router profile or no model "
        "(a passthrough-only gateway, or one emptied on purpose). Without it such a file is "
        "refused as truncated or half-written (router_model.registry.checks).",
    )
    endpoints: dict[str, Endpoint] = {}
    models: tuple[ModelSpec, ...] = ()
    profiles: tuple[RouterProfile, ...] = ()

    @model_validator(mode="after")
    def _cross_references(self) -> RegistryFile:
        names: dict[str, str] = {}
        for index, model in enumerate(self.models):
            for deployment in model.deployments:
                if deployment.endpoint not in self.endpoints:
                    raise ValueError(
                        f"models[{index}] ({model.name!r}): endpoint {deployment.endpoint!r} "
                        f"is not defined under endpoints"
                    )
            for written in (model.name, *model.aliases):
                owner = names.get(written.lower())
                if owner is not None:
                    raise ValueError(
                        f"models[{index}] ({model.name!r}): duplicate model name {written!r} "
                        f"(already used by {owner!r})"
                    )
                names[written.lower()] = model.name
        exact_names = {model.name for model in self.models}
        for index, model in enumerate(self.models):
            for fallback in model.fallbacks:
                if fallback == model.name or fallback not in exact_names:
                    problem = "itself" if fallback == model.name else "unknown model"
                    raise ValueError(
                        f"models[{index}] ({model.name!r}): fallbacks names {problem} {fallback!r}"
                    )
        seen_profiles: set[str] = set()
        for index, profile in enumerate(self.profiles):
            where = f"profiles[{index}] ({profile.name!r})"
            if profile.name.lower() in names or profile.name.lower() in seen_profiles:
                raise ValueError(f"{where}: duplicate name {profile.name!r}")
            seen_profiles.add(profile.name.lower())
            field = "endpoint" if profile.policy.endpoint is not None else "endpoints"
            for endpoint in profile.policy.replica_endpoints:
                if endpoint not in self.endpoints:
                    raise ValueError(
                        f"{where}: policy.{field} {endpoint!r} is not defined under endpoints"
                    )
            if profile.fallback is not None and profile.fallback.model not in exact_names:
                raise ValueError(
                    f"{where}: fallback.model names unknown model {profile.fallback.model!r}"
                )
            for model_name in profile.pool:
                if model_name not in exact_names:
                    raise ValueError(f"{where}: pool names unknown model {model_name!r}")
        return self
