"""The JAX coordinator listens where it is asked to: loopback for 127.0.0.1, every interface on request."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# One process (num_processes=1) is enough: process 0 starts the coordinator service and stays up.
_JOIN = """
import sys, time
from clipit.config.train import DistributedSettings
from clipit.train.mesh import init_distributed
init_distributed(DistributedSettings(coordinator=sys.argv[1], coordinator_bind=sys.argv[2] or None,
                                     num_processes=1, process_id=0))
print("joined", flush=True)
time.sleep(60)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _address(hex_address: str) -> str:
    """/proc/net/tcp's hex (32-bit words in host order, little-endian here) as an IP; v4-mapped v6 as v4."""
    raw = b"".join(bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8))
    ip = ipaddress.ip_address(raw)
    return str(getattr(ip, "ipv4_mapped", None) or ip)


def _listening(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, _, state = line.split()[1:4]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(_address(address))
    return found


def _listening_addresses_of_coordinator(coordinator_host: str, bind: str) -> set[str]:
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "PYTHONPATH": str(ROOT)}
    env.pop("JAX_COORDINATOR_BIND_ADDRESS", None)
    bind = bind.format(port=port)
    proc = subprocess.Popen(
        [sys.executable, "-c", _JOIN, f"{coordinator_host}:{port}", bind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the coordinator never listened"
            time.sleep(0.1)
        assert proc.stdout.readline().strip() == "joined"
        return _listening(port)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_coordinator_on_127_0_0_1_listens_on_loopback_only():
    assert _listening_addresses_of_coordinator("127.0.0.1", "") == {"127.0.0.1"}


@pytest.mark.slow
def test_coordinator_bind_key_opens_every_interface_on_request():
    # gRPC opens 0.0.0.0 as a dual-stack [::] socket
    assert _listening_addresses_of_coordinator("127.0.0.1", "0.0.0.0:{port}") <= {"0.0.0.0", "::"}


def test_coordinator_bind_without_a_port_is_a_config_error_naming_the_key():
    from clipit.config import load_config
    from clipit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train\.distributed\.coordinator_bind"):
        load_config(None, ["train.distributed.coordinator_bind=0.0.0.0"])
    config = load_config(None, ["train.distributed.coordinator_bind=[::]:1234"])
    assert config.train.distributed.coordinator_bind == "[::]:1234"
