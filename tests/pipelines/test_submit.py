"""pipelines/submit.py against the stand-in KFP API server (tests/fakes/kfp_api.py)."""

# no `from __future__ import annotations`: kfp reads component annotations at decoration time
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

kfp = pytest.importorskip("kfp", reason="kfp (the KFP SDK) is not installed")

from kfp import compiler, dsl  # noqa: E402
from kfp import kubernetes as kfp_k8s  # noqa: E402

from pipelines.kfp_client import CA_CERT_ENV, MIN_KFP_VERSION, TOKEN_PATH_ENV  # noqa: E402
from pipelines.submit import (  # noqa: E402
    TOKEN_ENV,
    SubmitError,
    SubmitResult,
    UploadResult,
    submit_run,
    upload_pipeline_version,
)

try:  # works with and without tests/__init__.py
    from tests.fakes.kfp_api import FakeKfpServer
except ImportError:  # pragma: no cover - depends on how pytest puts tests/ on sys.path
    from fakes.kfp_api import FakeKfpServer  # type: ignore[no-redef]

SECRET_VALUE = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
TOKEN = "t0ken-for-tests-only-9f8e7d"


@dsl.component(base_image="python:3.11-slim")
def _echo(text: str) -> str:
    return text


@dsl.pipeline(name="star-submit-test", description="tiny pipeline for submit tests")
def _tiny_pipeline(text: str = "hello") -> None:
    task = _echo(text=text)
    # the credentials are referenced by Secret name only; their values never enter the package
    kfp_k8s.use_secret_as_env(
        task,
        secret_name="star-object-store",
        secret_key_to_env={
            "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
        },
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pkg") / "pipeline.yaml"
    compiler.Compiler().compile(pipeline_func=_tiny_pipeline, package_path=str(path))
    return path


@pytest.fixture(autouse=True)
def _isolated_kfp_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user kfp context, no token or endpoint from the developer's environment."""
    from kfp.client import client as kfp_client_module

    monkeypatch.setattr(kfp_client_module.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for var in (TOKEN_ENV, TOKEN_PATH_ENV, CA_CERT_ENV, "KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT",
                "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)


@pytest.fixture
def api() -> Iterator[FakeKfpServer]:
    with FakeKfpServer() as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- upload --------------------------------------------------------------------------------------------


def test_first_upload_creates_the_pipeline_with_the_requested_version(
    api: FakeKfpServer, package: Path
) -> None:
    result = upload_pipeline_version(str(package), api.url, "star-gsm8k", version_name="v1")

    assert isinstance(result, UploadResult)
    assert result.created_pipeline is True
    assert result.pipeline_name == "star-gsm8k"
    assert result.version_name == "v1"
    assert result.url == f"{api.url}/#/pipelines/details/{result.pipeline_id}/version/{result.version_id}"
    assert api.pipelines[result.pipeline_id]["display_name"] == "star-gsm8k"
    versions = api.versions_of(result.pipeline_id)
    assert [v["name"] for v in versions] == ["v1"]
    assert versions[0]["pipeline_version_id"] == result.version_id

    (upload_req,) = api.requests_to("POST", "/apis/v2beta1/pipelines/upload_version")
    assert upload_req.param("pipelineid") == result.pipeline_id
    assert upload_req.param("name") == "v1"
    uploaded = upload_req.files["uploadfile"]
    assert uploaded.data == package.read_bytes()
    spec, platform = uploaded.documents()
    assert spec["pipelineInfo"]["name"] == "star-submit-test"
    assert "root" in spec and "deploymentSpec" in spec
    assert "platforms" in platform  # the kfp-kubernetes platform spec travels with the package


def test_second_upload_adds_a_version_to_the_same_pipeline(api: FakeKfpServer, package: Path) -> None:
    first = upload_pipeline_version(str(package), api.url, "star")
    second = upload_pipeline_version(str(package), api.url, "star")

    assert second.created_pipeline is False
    assert second.pipeline_id == first.pipeline_id
    assert second.version_id != first.version_id
    assert len(api.pipelines) == 1
    assert len(api.versions_of(first.pipeline_id)) == 2
    # default names: pipeline name, UTC time, package digest; unique per upload
    assert first.version_name.startswith("star-") and first.version_name != second.version_name
    import hashlib

    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:8]
    assert f"-{digest}-" in first.version_name and f"-{digest}-" in second.version_name


def test_duplicate_version_name_is_a_clear_error(api: FakeKfpServer, package: Path) -> None:
    upload_pipeline_version(str(package), api.url, "star", version_name="v1")
    with pytest.raises(SubmitError) as err:
        upload_pipeline_version(str(package), api.url, "star", version_name="v1")
    message = str(err.value)
    assert api.url in message and "409" in message and "already" in message
    assert "\n" not in message


def test_failed_first_version_upload_leaves_no_empty_pipeline(api: FakeKfpServer, package: Path) -> None:
    api.fail_next("POST", "/apis/v2beta1/pipelines/upload_version", 500, "object store unavailable")
    with pytest.raises(SubmitError) as err:
        upload_pipeline_version(str(package), api.url, "star")
    message = str(err.value)
    assert api.url in message and "HTTP 500" in message and "object store unavailable" in message
    assert "ml-pipeline" in message  # says what to check
    assert api.pipelines == {}


# ---- submit --------------------------------------------------------------------------------------------


def test_submit_run_gets_or_creates_the_experiment_and_runs_the_uploaded_version(
    api: FakeKfpServer, package: Path
) -> None:
    first = submit_run(str(package), api.url, experiment="star-exp", run_name="run one")
    second = submit_run(str(package), api.url, experiment="star-exp")

    assert isinstance(first, SubmitResult)
    assert first.url == f"{api.url}/#/runs/details/{first.run_id}"
    assert first.run_name == "run one"
    assert first.pipeline.pipeline_name == "star-submit-test"  # from pipelineInfo.name
    assert first.experiment_name == "star-exp"
    assert len(api.experiments) == 1 and first.experiment_id == second.experiment_id
    assert first.pipeline.pipeline_id == second.pipeline.pipeline_id
    assert second.pipeline.created_pipeline is False
    assert second.run_name.startswith("star-submit-test ")

    run_bodies = [r.json() for r in api.requests_to("POST", "/apis/v2beta1/runs")]
    assert len(run_bodies) == 2
    assert run_bodies[0]["experiment_id"] == first.experiment_id
    assert run_bodies[0]["pipeline_version_reference"] == {
        "pipeline_id": first.pipeline.pipeline_id,
        "pipeline_version_id": first.pipeline.version_id,
    }
    assert "pipeline_spec" not in run_bodies[0] or run_bodies[0]["pipeline_spec"] is None
    assert api.runs[first.run_id]["display_name"] == "run one"
    assert first.model_dump()["pipeline"]["version_id"] == first.pipeline.version_id


def test_submit_run_passes_the_service_account(api: FakeKfpServer, package: Path) -> None:
    result = submit_run(str(package), api.url, service_account="star")
    assert api.runs[result.run_id]["service_account"] == "star"
    (body,) = [r.json() for r in api.requests_to("POST", "/apis/v2beta1/runs")]
    assert body["service_account"] == "star"


def test_submit_run_uses_the_given_pipeline_name(api: FakeKfpServer, package: Path) -> None:
    result = submit_run(str(package), api.url, pipeline_name="star-arithmetic")
    assert result.pipeline.pipeline_name == "star-arithmetic"
    assert result.experiment_name == "star"
    assert {p["display_name"] for p in api.pipelines.values()} == {"star-arithmetic"}


def test_multi_user_mode_needs_a_namespace(package: Path) -> None:
    with FakeKfpServer(multi_user=True) as api:
        with pytest.raises(SubmitError, match="multi-user.*--namespace"):
            submit_run(str(package), api.url)
        assert api.requests_to("POST", "/apis/v2beta1/runs") == []

        result = submit_run(str(package), api.url, namespace="team-a")
        assert api.experiments[result.experiment_id]["namespace"] == "team-a"
        assert api.pipelines[result.pipeline.pipeline_id]["namespace"] == "team-a"


# ---- credentials ---------------------------------------------------------------------------------------


def test_token_from_env_is_sent_and_never_printed(
    package: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with FakeKfpServer(token=TOKEN) as api:
        result = submit_run(str(package), api.url)
        assert result.run_id
        assert api.requests, "no request reached the server"
        assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in api.requests)
        for req in api.requests:  # the token travels in the header only, never in a body or a URL
            assert TOKEN.encode() not in req.body
            assert TOKEN not in str(req.query)
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err
    assert TOKEN not in result.model_dump_json()


def test_token_argument_wins_over_env(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "some-other-token")
    with FakeKfpServer(token=TOKEN) as api:
        upload_pipeline_version(str(package), api.url, "star", existing_token=TOKEN)
        assert {r.headers.get("authorization") for r in api.requests} == {f"Bearer {TOKEN}"}


def test_missing_or_wrong_token_is_one_sentence_naming_host_and_env(package: Path) -> None:
    with FakeKfpServer(token=TOKEN) as api:
        with pytest.raises(SubmitError) as err:
            upload_pipeline_version(str(package), api.url, "star", existing_token="wrong-token-value")
    message = str(err.value)
    assert api.url in message and "401" in message and TOKEN_ENV in message
    assert "wrong-token-value" not in message and TOKEN not in message
    assert "\n" not in message


def test_uploaded_package_holds_no_secret_value(api: FakeKfpServer, package: Path) -> None:
    submit_run(str(package), api.url, existing_token=None)
    uploads = api.uploaded_files()
    assert uploads
    for upload in uploads:
        text = upload.text()
        assert SECRET_VALUE not in text
        assert "star-object-store" in text  # referenced by name
        docs = upload.documents()
        assert docs[0]["pipelineInfo"]["name"] == "star-submit-test"
        yaml.safe_dump(docs)  # plain data, round-trips
    for req in api.requests:
        assert SECRET_VALUE.encode() not in req.body


def test_token_of_a_kubeflow_notebook_is_read_from_its_mounted_file(
    package: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A Kubeflow notebook gets the KFP token as a file ($KF_PIPELINES_SA_TOKEN_PATH, by Kubeflow's PodDefault),
    not as $KFP_TOKEN."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv(TOKEN_PATH_ENV, str(token_file))
    with FakeKfpServer(token=TOKEN, multi_user=True) as api:
        result = submit_run(str(package), api.url, namespace="team-a")
        assert result.run_id
        assert {r.headers.get("authorization") for r in api.requests} == {f"Bearer {TOKEN}"}
    monkeypatch.setenv(TOKEN_PATH_ENV, str(tmp_path / "missing"))
    with pytest.raises(SubmitError, match=f"{TOKEN_PATH_ENV} names .*missing, which does not exist"):
        submit_run(str(package), "http://127.0.0.1:9")


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, as a private Kubeflow endpoint would have (openssl)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=kfp",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_a_private_endpoint_is_reached_with_its_ca_bundle(
    package: Path, private_ca: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeKfpServer(tls=private_ca) as api:
        with pytest.raises(SubmitError, match="--ca-cert"):
            submit_run(str(package), api.url)
        assert submit_run(str(package), api.url, ca_cert=private_ca[0]).run_id
        monkeypatch.setenv(CA_CERT_ENV, private_ca[0])
        assert upload_pipeline_version(str(package), api.url, "star").version_id
    with pytest.raises(SubmitError, match="CA bundle /nowhere.pem .* does not exist"):
        submit_run(str(package), "https://127.0.0.1:9", ca_cert="/nowhere.pem")


@pytest.mark.parametrize(("tag", "refused"), [("2.5.0", True), ("2.13.9", True), ("2.14.0", False),
                                              ("2.17.0", False), ("unknown", False)])
def test_a_server_older_than_the_dsl_collected_floor_is_refused(package: Path, tag: str, refused: bool) -> None:
    with FakeKfpServer(tag_name=tag) as api:
        if refused:
            with pytest.raises(SubmitError, match=f"release {tag}.*dsl.Collected.*{MIN_KFP_VERSION}"):
                submit_run(str(package), api.url)
            assert api.pipelines == {} and api.runs == {}
        else:
            assert submit_run(str(package), api.url).run_id


def test_the_packages_pipeline_root_goes_with_the_run(api: FakeKfpServer, tmp_path: Path) -> None:
    @dsl.pipeline(name="rooted", pipeline_root="s3://team-a-artifacts/star")
    def rooted() -> None:
        _echo(text="x")

    path = tmp_path / "rooted.yaml"
    compiler.Compiler().compile(pipeline_func=rooted, package_path=str(path))
    result = submit_run(str(path), api.url)
    assert api.runs[result.run_id]["runtime_config"]["pipeline_root"] == "s3://team-a-artifacts/star"


def test_a_version_prefix_gives_each_upload_a_new_name(api: FakeKfpServer, package: Path) -> None:
    """The chart's hook uploads on every `helm upgrade`: a fixed version name would be refused the second time."""
    first = upload_pipeline_version(str(package), api.url, "star", version_prefix="v1")
    second = upload_pipeline_version(str(package), api.url, "star", version_prefix="v1")
    assert first.version_name != second.version_name
    assert first.version_name.startswith("v1-") and second.version_name.startswith("v1-")


# ---- errors before and instead of a request ------------------------------------------------------------


def test_unreachable_host_is_a_clear_error(package: Path) -> None:
    host = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(SubmitError) as err:
        upload_pipeline_version(str(package), host, "star")
    message = str(err.value)
    assert host in message and "reach" in message and "port-forward" in message
    assert "\n" not in message


def test_login_redirect_is_reported_as_such(api: FakeKfpServer, package: Path) -> None:
    api.fail_next("GET", "/apis/v2beta1/healthz", 302, "<html>login</html>")
    with pytest.raises(SubmitError, match="login page"):
        upload_pipeline_version(str(package), api.url, "star")


def test_http_error_on_run_creation_names_host_and_status(api: FakeKfpServer, package: Path) -> None:
    api.fail_next("POST", "/apis/v2beta1/runs", 403, "user is not allowed in namespace")
    with pytest.raises(SubmitError) as err:
        submit_run(str(package), api.url)
    message = str(err.value)
    assert api.url in message and "HTTP 403" in message and "not allowed" in message and TOKEN_ENV in message


@pytest.mark.parametrize("host", ["localhost:8080", "ftp://example.org", "", "http://h/?q=1"])
def test_host_must_be_an_http_url(host: str, package: Path) -> None:
    with pytest.raises(SubmitError, match="host"):
        upload_pipeline_version(str(package), host, "star")


def test_missing_package_and_non_pipeline_file_fail_before_any_request(
    api: FakeKfpServer, tmp_path: Path
) -> None:
    with pytest.raises(SubmitError, match="does not exist"):
        upload_pipeline_version(str(tmp_path / "nope.yaml"), api.url, "star")
    not_a_pipeline = tmp_path / "values.yaml"
    not_a_pipeline.write_text("task: {name: gsm8k}\n")
    with pytest.raises(SubmitError, match="not a compiled KFP pipeline"):
        submit_run(str(not_a_pipeline), api.url)
    wrong_suffix = tmp_path / "pipeline.txt"
    wrong_suffix.write_text("x")
    with pytest.raises(SubmitError, match="must end with"):
        upload_pipeline_version(str(wrong_suffix), api.url, "star")
    assert api.requests == []


def test_empty_names_are_rejected(api: FakeKfpServer, package: Path) -> None:
    with pytest.raises(SubmitError, match="pipeline name is empty"):
        upload_pipeline_version(str(package), api.url, "  ")
    with pytest.raises(SubmitError, match="experiment name is empty"):
        submit_run(str(package), api.url, experiment="")
    assert api.requests == []
