"""`star storage`: copy folders (models, datasets, run folders) to and from object storage the way the
pipeline reads them: files first, a manifest of sizes and checksums last, downloads verified."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from components.storage import StorageConfig, describe_manifest, download_dir, upload_dir

storage_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Copy folders to and from storage.")
console = Console()

EndpointOpt = Annotated[str | None, typer.Option("--endpoint-url", help="S3-compatible endpoint (MinIO, ...).")]
PathStyleOpt = Annotated[bool, typer.Option("--path-style", help="Path-style S3 addressing.")]
RegionOpt = Annotated[str | None, typer.Option("--region")]


def _settings(endpoint_url: str | None, path_style: bool, region: str | None) -> StorageConfig:
    return StorageConfig(endpoint_url=endpoint_url, path_style=path_style, region=region)


@storage_app.command("put")
def put(
    folder: Annotated[Path, typer.Argument(help="Local folder, e.g. a save_pretrained model.")],
    url: Annotated[str, typer.Argument(help="s3://bucket/prefix, gs://bucket/prefix or a path.")],
    endpoint_url: EndpointOpt = None,
    path_style: PathStyleOpt = False,
    region: RegionOpt = None,
) -> None:
    """Upload a folder; it counts as complete (for model.base, say) only once its manifest is written."""
    manifest = upload_dir(folder, url, _settings(endpoint_url, path_style, region))
    console.print(f"[green]uploaded {folder} to {url} ({describe_manifest(manifest)})[/green]")


@storage_app.command("get")
def get(
    url: Annotated[str, typer.Argument(help="A folder uploaded with `star storage put`.")],
    folder: Annotated[Path, typer.Argument(help="Local folder to create (replaced if it exists).")],
    endpoint_url: EndpointOpt = None,
    path_style: PathStyleOpt = False,
    region: RegionOpt = None,
) -> None:
    """Download a complete folder, every file checked against the manifest."""
    manifest = download_dir(url, folder, _settings(endpoint_url, path_style, region))
    console.print(f"[green]downloaded {url} to {folder} ({describe_manifest(manifest)}, verified)[/green]")
