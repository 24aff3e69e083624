"""Which names belong to credentials. Credentials are never settings and never literal values in a manifest:
they come from the environment, the provider's default chain or a Kubernetes Secret. Both the storage settings
and the training job's environment refuse a name this recognises."""

from __future__ import annotations

import re

_CREDENTIAL_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|API_KEY|PRIVATE_KEY", re.IGNORECASE)


def looks_like_credential(name: str) -> bool:
    """True for a setting or variable name that suggests it holds a credential (`AWS_SECRET_ACCESS_KEY`,
    `hf_token`, `db_password`, ...), in any letter case."""
    return bool(_CREDENTIAL_NAME.search(name))
