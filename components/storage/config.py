"""How to reach object storage (`StorageConfig`), and the settings used where a caller passes none."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.core.credentials import looks_like_credential


class StorageConfig(BaseModel):
    """How to reach object storage. Credentials are not settings: boto3 reads AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY / AWS_PROFILE / instance roles, gcsfs reads GOOGLE_APPLICATION_CREDENTIALS or
    workload identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: S3-compatible endpoint (MinIO, SeaweedFS, Ceph). None: AWS, or the AWS_ENDPOINT_URL_S3 variable.
    endpoint_url: str | None = None
    #: None: AWS_REGION / AWS_DEFAULT_REGION / the profile's region.
    region: str | None = None
    #: Path-style addressing (`http://host/bucket/key`), which most self-hosted servers need.
    path_style: bool = False
    #: Attempts per operation, counting the first, and the backoff between them (doubling, with jitter).
    attempts: int = Field(6, ge=1, le=50)
    backoff_seconds: float = Field(0.5, ge=0.0)
    max_backoff_seconds: float = Field(20.0, ge=0.0)
    timeout_seconds: float = Field(60.0, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if looks_like_credential(str(key)):
                    raise ValueError(
                        f"{key} looks like a credential; credentials are never settings. Remove it and provide "
                        "them through the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                        "GOOGLE_APPLICATION_CREDENTIALS) or the provider's default chain"
                    )
        return data


_default = StorageConfig()


def configure(config: StorageConfig) -> None:
    """The settings used where a caller passes none (task data loading, the training worker): a step sets them
    from its run configuration when it reads it."""
    global _default
    _default = config


def settings(config: StorageConfig | None) -> StorageConfig:
    """`config`, or the configured default when it is None."""
    return config if config is not None else _default
