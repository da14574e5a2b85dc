"""What a run takes from the config when no flag says otherwise: stores, keys, identities, the drill log.

One place for these choices, shared by the command line (``cli/common.py`` passes its flags in) and the dashboard
(``web``, which has no flags for them and uses the config and the environment alone), so both open the same store
with the same S3 options, check the same signatures and append to the same drill log.
"""

from __future__ import annotations

import os
from typing import Any

from dbkeeper import crypto, signing
from dbkeeper.config import Config
from dbkeeper.repo import Repository
from dbkeeper.storage import Store, open_store


def store(url: str, cfg: Config, *, sse: str | None = None, sse_kms_key_id: str | None = None) -> Store:
    """The store at ``url``: S3 options from the arguments, else the config's ``[s3]`` table (the endpoint also from
    AWS_ENDPOINT_URL, credentials from boto3's usual chain)."""
    sse = sse or cfg.s3.sse
    kms = sse_kms_key_id or cfg.s3.sse_kms_key_id
    if kms and not sse:
        sse = "aws:kms"
    return open_store(url, endpoint_url=cfg.s3.endpoint_url, sse=sse, sse_kms_key_id=kms, region=cfg.s3.region)


def verify_key(cfg: Config, flag: str | None = None) -> signing.VerifyKey | None:
    """The verify key: the flag, else $DBKEEPER_VERIFY_KEY, else the config's; None when none is given."""
    if flag:
        return signing.parse_verify_key(flag, "--verify-key")
    env = os.environ.get("DBKEEPER_VERIFY_KEY")
    if env:
        return signing.parse_verify_key(env, "DBKEEPER_VERIFY_KEY")
    if cfg.signing.verify_key:
        return signing.parse_verify_key(cfg.signing.verify_key, "signing.verify_key")
    return None


def repository(url: str, cfg: Config, *, verify_key_flag: str | None = None, **s3: str | None) -> Repository:
    """The repository over the store ``url``, checking signatures when a verify key is given."""
    return Repository(store(url, cfg, **s3), verify_key(cfg, verify_key_flag))


def signer(cfg: Config, flag: str | None = None) -> signing.Signer | None:
    path = flag or cfg.signing.key
    return signing.load_signer(path) if path else None


def identities(cfg: Config, flag: str | None = None) -> list[Any] | None:
    path = flag or os.environ.get("DBKEEPER_AGE_IDENTITY") or cfg.identity
    return crypto.load_identities(path) if path else None


def drill_log_path(cfg: Config) -> str:
    from dbkeeper import drill_log  # only the commands that read the log pay for importing it

    return cfg.drill.log or str(drill_log.default_path())
