"""pytest fixtures around the cloud stand-ins of lab/standins/cloud.py (import them by name)."""

from __future__ import annotations

import contextlib

import pytest

from lab.standins.cloud import (  # noqa: F401 - re-exported for the test modules
    AMI_ID,
    FAKE_CREDENTIALS,
    GCE_STANDIN,
    LOOPBACK,
    ROOT,
    Ec2FaultProxy,
    GceStandIn,
    MetadataStandIn,
    MotoServer,
    ansible_env,
    build_ec2_fleet,
    free_port,
    gce_instance,
    register_lab_instances,
)


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory):
    with MotoServer(str(tmp_path_factory.mktemp("moto"))) as server:
        yield server


@pytest.fixture
def clean_moto(moto_server):
    moto_server.reset()
    yield moto_server
    # Leave auth off for the next test even if this one failed half-way.
    with contextlib.suppress(OSError):
        moto_server.require_auth_after("inf")
