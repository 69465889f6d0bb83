"""Pod addresses: loopback only, never one in use, released ones come back last."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry_local.agent.network import AddressPool, bound_addresses


def nothing_bound() -> set[str]:
    return set()


def test_addresses_go_round_the_block_and_skip_what_is_in_use() -> None:
    pool = AddressPool("127.200.0.0/29", bound=nothing_bound)
    given = [pool.allocate() for _ in range(6)]
    assert sorted(given) == [f"127.200.0.{n}" for n in range(1, 7)]
    with pytest.raises(RuntimeError, match="no free pod address"):
        pool.allocate()
    pool.release(given[0])
    assert pool.allocate() == given[0]


def test_a_released_address_is_the_last_to_come_back() -> None:
    pool = AddressPool("127.200.0.0/29", bound=nothing_bound)
    first = pool.allocate()
    pool.release(first)
    following = [pool.allocate() for _ in range(5)]
    assert first not in following
    assert pool.allocate() == first


def test_an_address_some_socket_is_bound_to_is_skipped() -> None:
    pool = AddressPool("127.200.0.0/29", bound=lambda: {f"127.200.0.{n}" for n in range(1, 6)})
    assert pool.allocate() == "127.200.0.6"


def test_agents_start_their_round_at_different_places() -> None:
    one = AddressPool(owner="node-a", bound=nothing_bound).allocate()
    two = AddressPool(owner="node-b", bound=nothing_bound).allocate()
    assert one != two


def test_a_pod_keeps_its_address_across_agent_restarts_if_it_is_free() -> None:
    pool = AddressPool("127.200.0.0/29", bound=nothing_bound)
    assert pool.reserve("127.200.0.5")
    assert not pool.reserve("127.200.0.5")
    assert not pool.reserve("127.200.0.0")  # the network address
    assert not pool.reserve("127.200.0.7")  # the broadcast address
    assert not pool.reserve("127.64.0.9")
    assert not pool.reserve("not an address")
    assert "127.200.0.5" not in {pool.allocate() for _ in range(5)}


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "192.168.1.0/24", "127.0.0.0/31"])
def test_only_loopback_blocks_big_enough_for_pods(cidr: str) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8|too small"):
        AddressPool(cidr)


def test_bound_addresses_are_read_from_the_kernels_socket_tables(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st\n"
    (tmp_path / "tcp").write_text(header + "   0: 0100007F:1F90 00000000:0000 0A\n")
    (tmp_path / "udp").write_text(header + "   0: 05008080:0035 00000000:0000 07\n")
    assert bound_addresses(tmp_path) == {"127.0.0.1", "128.128.0.5"}
