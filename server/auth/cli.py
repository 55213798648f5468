"""``router-r1 keys``: make API keys and the hashed entries of the key file."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

keys_app = typer.Typer(no_args_is_help=True, help="Make API keys for the key file.")


@keys_app.command("new")
def new(
    key_id: Annotated[
        str, typer.Argument(metavar="ID", help="Names the key (letters, digits, ._-).")
    ],
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    budget: Annotated[float | None, typer.Option(help="USD per budget period.")] = None,
    period: Annotated[str, typer.Option(help="hour, day, week or month (UTC).")] = "month",
    admin: Annotated[bool, typer.Option(help="May read every request's trace.")] = False,
    profile: Annotated[
        list[str] | None,
        typer.Option(help="A router profile it may use (repeat; default: every profile)."),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(help="A registry model it may call directly (repeat; default: all)."),
    ] = None,
) -> None:
    """Print a new key (shown once: give it to the client) and its key-file entry."""
    import yaml
    from pydantic import ValidationError

    from server.auth.keys import ApiKey, hash_key, new_key

    key = new_key()
    fields: dict[str, Any] = {"id": key_id, "sha256": hash_key(key), "budget_period": period}
    optional = {"requests_per_minute": rpm, "tokens_per_minute": tpm, "budget_usd": budget}
    fields.update({name: value for name, value in optional.items() if value is not None})
    if admin:
        fields["admin"] = True
    if profile is not None:
        fields["profiles"] = profile
    if model is not None:
        fields["models"] = model
    try:
        entry = ApiKey.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        typer.echo(f"error: {'.'.join(map(str, first['loc']))}: {first['msg']}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"key: {key}", err=True)
    typer.echo(
        yaml.safe_dump([entry.model_dump(mode="json", exclude_defaults=True)], sort_keys=False),
        nl=False,
    )


@keys_app.command("hash")
def hash_stdin() -> None:
    """Read a key on standard input; print its SHA-256 (the key file's ``sha256``)."""
    from server.auth.keys import hash_key

    typer.echo(hash_key(sys.stdin.read().strip()))
