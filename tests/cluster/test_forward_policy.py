"""The forward policy a host runs with: derived from the lease on a cluster node unless the configuration sets one."""

from __future__ import annotations

from pathlib import Path

from afactors.channel import installed_plugins
from afactors.cli import build_parser, load_settings
from afactors.cluster import ForwardPolicy
from afactors.host import HostConfig

NODE = ["--store", "postgresql://u@127.0.0.1/db", "--node-id", "a", "--advertise", "http://127.0.0.1:8001"]


def host_config(*argv: str) -> HostConfig:
    plugins = installed_plugins()
    config: HostConfig = load_settings(build_parser(plugins), plugins, list(argv)).host
    return config


def test_a_cluster_node_gives_up_on_a_silent_owner_after_a_fifth_of_a_lease_and_relocates_for_two() -> None:
    policy = host_config(*NODE, "--lease-seconds", "4").forward_policy
    assert (policy.silence, policy.heartbeat, policy.connect_timeout, policy.wait) == (0.8, 0.8 / 3, 0.8, 8.0)
    assert policy.backoff.cap == 0.4  # located again every tenth of a lease at most
    longer = host_config(*NODE, "--lease-seconds", "30").forward_policy
    assert (longer.silence, longer.connect_timeout, longer.wait, longer.backoff.cap) == (6.0, 2.0, 60.0, 3.0)


def test_a_host_that_is_not_a_cluster_node_keeps_the_fixed_policy() -> None:
    assert host_config().forward_policy == ForwardPolicy()
    assert HostConfig(node_id="a").forward_policy == ForwardPolicy()  # on LMDB a node id only names the host


def test_a_forward_section_in_the_configuration_file_wins_over_the_lease(tmp_path: Path) -> None:
    path = tmp_path / "afactors.toml"
    path.write_text("[host.forward]\nsilence = 9.0\n")
    policy = host_config(*NODE, "--lease-seconds", "4", "--config", str(path)).forward_policy
    assert (policy.silence, policy.wait) == (9.0, ForwardPolicy().wait)
