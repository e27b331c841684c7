"""The bench's server-side figures: CPU time per streamed token, GPU memory per process."""

from __future__ import annotations

import os

import pytest

from bench.measure import (
    CpuTally,
    cpu_ticks,
    cpu_us_per_token,
    parse_compute_apps,
    parse_cpu_ticks,
)

# /proc/PID/stat of a process whose name holds a space and a parenthesis; utime 250, stime 50
STAT = "4242 (python (x) y) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 50 7 3 20 0 9 0 123 0 0"


def test_cpu_ticks_are_utime_plus_stime_whatever_the_process_name() -> None:
    assert parse_cpu_ticks(STAT) == 300


def test_cpu_per_token_in_microseconds() -> None:
    assert cpu_us_per_token(300, 1500, ticks_per_second=100) == pytest.approx(2000.0)
    assert cpu_us_per_token(0, 10, ticks_per_second=100) == 0.0
    assert cpu_us_per_token(5, 0, ticks_per_second=100) is None


def test_tally_sums_the_phases_per_group_and_for_the_whole_server() -> None:
    tally = CpuTally()
    tally.add(1000, {"front": 10, "runner": 90})
    tally.add(3000, {"front": 30, "runner": 270})
    per_token = tally.us_per_token()
    ticks = os.sysconf("SC_CLK_TCK")
    assert per_token["front_cpu_us_per_token"] == pytest.approx(40 / ticks / 4000 * 1e6)
    assert per_token["runner_cpu_us_per_token"] == pytest.approx(360 / ticks / 4000 * 1e6)
    assert per_token["server_cpu_us_per_token"] == pytest.approx(400 / ticks / 4000 * 1e6)
    assert CpuTally().us_per_token() == {}


def test_a_single_process_server_names_its_group_server() -> None:
    tally = CpuTally()
    tally.add(100, {"server": 5})
    assert list(tally.us_per_token()) == ["server_cpu_us_per_token"]


def test_cpu_ticks_of_this_process_grow_and_of_a_gone_one_are_zero() -> None:
    before = cpu_ticks([os.getpid()])
    sum(i * i for i in range(3_000_000))
    assert cpu_ticks([os.getpid()]) > before
    assert cpu_ticks([2**22 + 1]) == 0


def test_gpu_memory_per_process_from_nvidia_smi() -> None:
    csv = "1234, 5120\n1234, 1024\n99, [N/A]\n77, 300\n\n"
    assert parse_compute_apps(csv) == {1234: 6144.0, 77: 300.0}
