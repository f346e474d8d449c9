"""`make test` on two xdist workers: each worker's cluster state directory, the order files are handed out in,
and the traffic totals a worker hands to the controller."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.traffic import CheckRecord, Tally
from tests.parallel import SLOW_FIRST, cluster_dir, file_rank

ROOT = Path("/repo")


def test_gw0_and_a_serial_run_keep_the_usual_cluster_and_the_others_get_their_own():
    assert cluster_dir(None, {}, ROOT) is None
    assert cluster_dir("gw0", {}, ROOT) is None
    assert cluster_dir("gw1", {}, ROOT) == "/repo/.cache/cluster-gw1"
    assert cluster_dir("gw1", {"GREENLIGHT_CACHE": "/c"}, ROOT) == "/c/cluster-gw1"
    assert cluster_dir("gw2", {"GREENLIGHT_CLUSTER_DIR": "/s/one"}, ROOT) == "/s/one-gw2"


def test_slow_e2e_files_first_then_other_e2e_files_then_unit_files():
    files = ["tests/unit/test_spec.py", "tests/e2e/test_no_server.py", SLOW_FIRST[1], SLOW_FIRST[0]]
    assert sorted(files, key=file_rank) == [SLOW_FIRST[0], SLOW_FIRST[1], "tests/e2e/test_no_server.py",
                                            "tests/unit/test_spec.py"]
    assert len(set(SLOW_FIRST)) == len(SLOW_FIRST)


def test_a_workers_tally_merges_after_the_controllers_own_checks():
    worker = Tally()
    worker.checks[1] = CheckRecord("t::a", "ns/svc 10.96.0.1:80", 100, 0, False)
    worker.checks[2] = CheckRecord("t::b", "ns/svc 10.96.0.2:80", 50, 7, True)
    worker.forbidden[2] = {3, 4}
    controller = Tally()
    controller.checks[1] = CheckRecord("u::c", "ns/svc 10.96.0.3:80", 10, 0, False)
    controller.merge(worker.export())
    assert [c.test for c in controller.checks.values()] == ["u::c", "t::a", "t::b"]
    assert controller.forbidden == {3: {3, 4}}
    assert controller.lines()[0] == ("ClusterIP traffic: 3 checks, 160 requests sent, 7 failed (7 of them in checks "
                                     "that expect failures), 2 answers from a version that should not serve")


def test_every_slow_file_named_exists():
    root = Path(__file__).resolve().parents[2]
    assert [f for f in SLOW_FIRST if not (root / f).is_file()] == []
