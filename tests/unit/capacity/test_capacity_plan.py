"""plan(): which group grows by how much, which idle node goes, and what never happens."""

from __future__ import annotations

import math
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.capacity.asg import AsgState, Instance, bounds
from ferry.capacity.binpack import pack
from ferry.capacity.cluster import NodeView, PendingPod
from ferry.capacity.node_group import NodeGroup
from ferry.capacity.plan import (
    AT_MAX_SIZE,
    TOO_LARGE,
    UNAVAILABLE,
    Notice,
    ScaleIn,
    news,
    pause_after,
    plan,
)
from ferry.capacity.resources import Resources

Gi = 2**30
NODE = Resources(1000, 2 * Gi)
GROUP = NodeGroup("cpu", {"pool": "cpu"}, asg_name="cpu-asg", allocatable=NODE, max_size=10)
COOLDOWN = 600.0
NOW = 10_000.0


def asg(
    desired: int, instances: Sequence[str] = (), min_size: int = 0, max_size: int = 10
) -> AsgState:
    return AsgState(
        "cpu-asg", desired, min_size, max_size, tuple(Instance(i, "InService") for i in instances)
    )


def waiting(
    count: int, cpu: int = 700, memory: int = Gi // 4, api: str = "iris"
) -> list[PendingPod]:
    return [
        PendingPod("ml", f"{api}-{i}", api, "cpu", Resources(cpu, memory), unschedulable=True)
        for i in range(count)
    ]


IDLE = Resources()
BUSY = Resources(900, Gi)


def node(
    name: str,
    *,
    used: Resources = IDLE,
    holders: tuple[str, ...] = (),
    cordoned: bool = False,
    marked: bool = False,
    instance: str | None = None,
) -> NodeView:
    return NodeView(
        name=name,
        uid=f"uid-{name}",
        group="cpu",
        instance_id=instance if instance is not None else f"i-{name}",
        allocatable=NODE,
        used=used,
        holders=holders,
        cordoned=cordoned,
        marked=marked,
    )


def test_unschedulable_pods_raise_desired_capacity_by_the_nodes_they_need() -> None:
    decided = plan([GROUP], {"cpu": asg(0)}, [], waiting(3), {}, now=NOW, cooldown=COOLDOWN)
    (out,) = decided.scale_out
    assert (out.asg, out.current, out.desired, out.added) == ("cpu-asg", 0, 3, 3)
    assert out.apis() == {("ml", "iris"): 3}
    assert not decided.scale_in and not decided.notices


def test_small_pods_share_new_nodes() -> None:
    decided = plan(
        [GROUP], {"cpu": asg(0)}, [], waiting(5, cpu=300), {}, now=NOW, cooldown=COOLDOWN
    )
    # Three 300m pods per 1-core node: five pods, two nodes.
    assert decided.scale_out[0].added == 2


def test_free_room_and_instances_still_joining_are_used_before_new_nodes() -> None:
    roomy = node("a", used=Resources(200, Gi // 2), instance="i-a")
    decided = plan(
        [GROUP],
        {"cpu": asg(2, ["i-a", "i-b"])},
        [roomy],
        waiting(3),
        {},
        now=NOW,
        cooldown=COOLDOWN,
    )
    # One pod fits node a; i-b has not joined yet and will hold another; one new node remains.
    (out,) = decided.scale_out
    assert (out.current, out.desired) == (2, 3)
    assert len(out.pods) == 1


def test_a_cordoned_nodes_room_is_not_counted() -> None:
    cordoned = node("a", cordoned=True, instance="i-a")
    decided = plan(
        [GROUP], {"cpu": asg(1, ["i-a"])}, [cordoned], waiting(1), {}, now=NOW, cooldown=COOLDOWN
    )
    assert decided.scale_out[0].added == 1


def test_growth_stops_at_the_maximum_and_says_so() -> None:
    group = NodeGroup("cpu", {"pool": "cpu"}, asg_name="cpu-asg", allocatable=NODE, max_size=3)
    decided = plan(
        [group],
        {"cpu": asg(1, ["i-a"])},
        [node("a", used=BUSY)],
        waiting(4),
        {},
        now=NOW,
        cooldown=COOLDOWN,
    )
    assert decided.scale_out[0].desired == 3
    (notice,) = decided.notices
    assert (notice.reason, notice.api) == (AT_MAX_SIZE, ("ml", "iris"))
    assert (
        notice.message
        == "node group cpu is at its maximum of 3 nodes: 2 pods of this API wait for room"
    )


def test_the_asgs_own_maximum_is_kept_too() -> None:
    decided = plan(
        [GROUP], {"cpu": asg(0, max_size=1)}, [], waiting(3), {}, now=NOW, cooldown=COOLDOWN
    )
    assert decided.scale_out[0].desired == 1


def test_a_group_at_its_maximum_does_not_grow() -> None:
    full = [node(n, used=BUSY) for n in ("a", "b", "c")]
    state = asg(3, ["i-a", "i-b", "i-c"], max_size=3)
    decided = plan([GROUP], {"cpu": state}, full, waiting(1), {}, now=NOW, cooldown=COOLDOWN)
    assert not decided.scale_out
    assert {n.reason for n in decided.notices} == {AT_MAX_SIZE}


def test_a_pod_larger_than_a_node_is_no_reason_to_grow() -> None:
    decided = plan(
        [GROUP], {"cpu": asg(0)}, [], waiting(2, cpu=1500), {}, now=NOW, cooldown=COOLDOWN
    )
    assert not decided.scale_out
    (notice,) = decided.notices
    assert notice.reason == TOO_LARGE
    assert "cpu 1, memory 2Gi" in notice.message


def test_pods_the_scheduler_has_not_tried_neither_grow_nor_allow_shrinking() -> None:
    untried = [PendingPod("ml", "p", "iris", "cpu", Resources(700, 1), unschedulable=False)]
    idle = node("a", instance="i-a")
    decided = plan(
        [GROUP], {"cpu": asg(1, ["i-a"])}, [idle], untried, {"a": 0.0}, now=NOW, cooldown=COOLDOWN
    )
    assert not decided.scale_out and not decided.scale_in


def test_a_node_idle_for_the_cooldown_is_removed() -> None:
    idle = node("a", instance="i-a")
    too_soon = plan(
        [GROUP],
        {"cpu": asg(1, ["i-a"])},
        [idle],
        [],
        {"a": NOW - COOLDOWN + 1},
        now=NOW,
        cooldown=COOLDOWN,
    )
    assert not too_soon.scale_in
    due = plan(
        [GROUP],
        {"cpu": asg(1, ["i-a"])},
        [idle],
        [],
        {"a": NOW - COOLDOWN},
        now=NOW,
        cooldown=COOLDOWN,
    )
    assert due.scale_in == (ScaleIn("cpu", "cpu-asg", "a", "i-a", COOLDOWN),)


def test_a_node_first_seen_idle_starts_its_cooldown_now() -> None:
    decided = plan(
        [GROUP], {"cpu": asg(1, ["i-a"])}, [node("a")], [], {}, now=NOW, cooldown=COOLDOWN
    )
    assert decided.idle_since == {"a": NOW}
    assert not decided.scale_in


def test_shrinking_stops_at_the_minimum_longest_idle_first() -> None:
    nodes = [node(n) for n in ("a", "b", "c")]
    since = {"a": 300.0, "b": 100.0, "c": 200.0}
    decided = plan(
        [GROUP],
        {"cpu": asg(3, ["i-a", "i-b", "i-c"], min_size=1)},
        nodes,
        [],
        since,
        now=NOW,
        cooldown=COOLDOWN,
    )
    assert [s.node for s in decided.scale_in] == ["b", "c"]


def test_the_settings_minimum_is_kept_even_below_the_asgs() -> None:
    group = NodeGroup("cpu", {"pool": "cpu"}, asg_name="cpu-asg", allocatable=NODE, min_size=2)
    nodes = [node(n) for n in ("a", "b")]
    decided = plan(
        [group],
        {"cpu": asg(2, ["i-a", "i-b"])},
        nodes,
        [],
        {"a": 0.0, "b": 0.0},
        now=NOW,
        cooldown=COOLDOWN,
    )
    assert not decided.scale_in


def test_busy_protected_foreign_and_othercordoned_nodes_stay() -> None:
    nodes = [
        node("busy", holders=("ml/iris-1",)),
        node("protected"),
        node("foreign", instance="i-elsewhere"),
        node("drained", cordoned=True),
        node("ours", cordoned=True, marked=True),
    ]
    state = AsgState(
        "cpu-asg",
        4,
        0,
        10,
        (
            Instance("i-busy", "InService"),
            Instance("i-protected", "InService", protected=True),
            Instance("i-drained", "InService"),
            Instance("i-ours", "InService"),
        ),
    )
    since = {n.name: 0.0 for n in nodes}
    decided = plan([GROUP], {"cpu": state}, nodes, [], since, now=NOW, cooldown=COOLDOWN)
    assert [s.node for s in decided.scale_in] == ["ours"]


def test_no_shrinking_while_instances_are_still_joining() -> None:
    decided = plan(
        [GROUP],
        {"cpu": asg(2, ["i-a", "i-b"])},
        [node("a")],
        [],
        {"a": 0.0},
        now=NOW,
        cooldown=COOLDOWN,
    )
    assert not decided.scale_in


def test_a_node_the_loop_cordoned_is_handed_back_unless_it_is_leaving() -> None:
    busy_again = node("a", cordoned=True, marked=True, holders=("ml/x",))
    gone = node("b", cordoned=True, marked=True, instance="i-terminated")
    decided = plan(
        [GROUP], {"cpu": asg(1, ["i-a"])}, [busy_again, gone], [], {}, now=NOW, cooldown=COOLDOWN
    )
    assert decided.release == ("a",)


def test_a_group_whose_asg_was_not_read_is_left_alone_and_its_waiting_apis_are_told() -> None:
    decided = plan(
        [GROUP],
        {},
        [node("a")],
        waiting(2),
        {"a": 0.0},
        now=NOW,
        cooldown=COOLDOWN,
        unavailable={"cpu": "AccessDenied"},
    )
    assert not decided.scale_out and not decided.scale_in
    (notice,) = decided.notices
    assert (notice.reason, notice.message) == (UNAVAILABLE, "node group cpu: AccessDenied")


def test_the_idle_clock_starts_over_for_a_busy_node_and_forgets_a_gone_one() -> None:
    nodes = [node("idle"), node("busy", holders=("ml/x",))]
    decided = plan(
        [GROUP],
        {"cpu": asg(2, ["i-idle", "i-busy"])},
        nodes,
        [],
        {"idle": 5.0, "busy": 5.0, "gone": 5.0},
        now=NOW,
        cooldown=COOLDOWN,
    )
    assert decided.idle_since == {"idle": 5.0}


def test_a_notice_is_news_once_while_it_lasts_whatever_its_counts() -> None:
    first = Notice(AT_MAX_SIZE, "cpu", ("ml", "iris"), "2 pods wait")
    again = Notice(AT_MAX_SIZE, "cpu", ("ml", "iris"), "3 pods wait")
    other = Notice(TOO_LARGE, "cpu", ("ml", "iris"), "too large")
    assert news(frozenset({first}), frozenset()) == [first]
    assert news(frozenset({again, other}), frozenset({first})) == [other]
    # Gone for a pass, then back: news again.
    assert news(frozenset({first}), frozenset({other})) == [first]


def test_failed_passes_back_off_to_five_minutes() -> None:
    assert [pause_after(n, 10.0) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert pause_after(1000, 10.0) == 300
    assert pause_after(3, 900.0) == 900


# --- properties -----------------------------------------------------------------------------

resources = st.builds(
    Resources,
    cpu=st.integers(50, 3000),
    memory=st.integers(Gi // 16, 3 * Gi),
    gpu=st.integers(0, 1),
)
node_sizes = st.builds(
    Resources,
    cpu=st.integers(500, 4000),
    memory=st.integers(Gi // 2, 8 * Gi),
    gpu=st.integers(0, 2),
)


@st.composite
def worlds(
    draw: st.DrawFn,
) -> tuple[NodeGroup, AsgState, list[NodeView], list[PendingPod], dict[str, float]]:
    allocatable = draw(node_sizes)
    min_size = draw(st.integers(0, 3))
    group = NodeGroup(
        "cpu",
        {"pool": "cpu"},
        asg_name="cpu-asg",
        allocatable=allocatable,
        min_size=min_size,
        max_size=draw(st.one_of(st.none(), st.integers(min_size, 8))),
    )
    count = draw(st.integers(0, 8))
    nodes = [
        NodeView(
            name=f"n{i}",
            uid=f"u{i}",
            group="cpu",
            instance_id=draw(st.sampled_from([f"i-{i}", f"i-{i}", None, "i-other"])),
            allocatable=allocatable,
            used=draw(
                st.sampled_from(
                    [
                        Resources(),
                        allocatable,
                        Resources(allocatable.cpu // 2, allocatable.memory // 2),
                    ]
                )
            ),
            holders=draw(st.sampled_from([(), (), (f"ml/p{i}",)])),
            cordoned=(cordoned := draw(st.booleans())),
            marked=cordoned and draw(st.booleans()),
        )
        for i in range(count)
    ]
    instances = tuple(
        Instance(
            f"i-{i}",
            draw(st.sampled_from(["InService", "InService", "Pending", "Terminating"])),
            protected=draw(st.booleans()),
        )
        for i in range(draw(st.integers(count, count + 3)))
    )
    asg_max = draw(st.integers(max(1, min_size), 10))
    # Desired capacity near the number of instances, where shrinking is possible at all.
    desired = draw(st.integers(0, len(instances) + 1))
    state = AsgState("cpu-asg", desired, draw(st.integers(0, min_size)), asg_max, instances)
    pending = [
        PendingPod(
            "ml",
            f"p{i}",
            draw(st.sampled_from(["a", "b"])),
            "cpu",
            draw(resources),
            draw(st.booleans()),
        )
        for i in range(draw(st.sampled_from([0, 0, 1, 4, 12])))
    ]
    since = {n.name: draw(st.floats(0, NOW)) for n in nodes if draw(st.booleans())}
    return group, state, nodes, pending, since


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_the_plan_never_breaks_the_bounds_nor_removes_a_held_or_fresh_node(
    world: tuple[NodeGroup, AsgState, list[NodeView], list[PendingPod], dict[str, float]],
) -> None:
    group, state, nodes, pending, since = world
    decided = plan([group], {"cpu": state}, nodes, pending, since, now=NOW, cooldown=COOLDOWN)
    limits = bounds(group, state)
    by_name = {n.name: n for n in nodes}
    for out in decided.scale_out:
        assert state.desired < out.desired <= limits.high
        assert out.added <= len(out.pods)
    assert len(decided.scale_in) <= max(0, state.desired - limits.low)
    assert not (decided.scale_out and decided.scale_in)
    for step in decided.scale_in:
        chosen = by_name[step.node]
        assert not chosen.holders
        assert step.instance_id in state.removable
        assert NOW - since.get(step.node, NOW) >= COOLDOWN
        assert not chosen.cordoned or chosen.marked
    assert not {s.node for s in decided.scale_in} & set(decided.release)
    for name in decided.release:
        assert by_name[name].marked


@settings(max_examples=300, deadline=None)
@given(
    st.lists(resources, max_size=15),
    st.lists(resources, max_size=3),
    node_sizes,
    st.integers(0, 20),
)
def test_packing_places_each_pod_once_and_needs_at_least_the_volume_of_nodes(
    pods: list[Resources], rooms: list[Resources], size: Resources, limit: int
) -> None:
    keyed = [(f"p{i:02d}", need) for i, need in enumerate(pods)]
    packed = pack(keyed, rooms, size, limit)
    placed = [*packed.on_new, *packed.on_existing, *packed.too_large, *packed.unplaced]
    assert sorted(placed) == [key for key, _ in keyed]
    assert packed.new_nodes <= min(limit, len(packed.on_new))
    needs = dict(keyed)
    on_new = [needs[k] for k in packed.on_new]
    for part in ("cpu", "memory", "gpu"):
        demand = sum(getattr(r, part) for r in on_new)
        per_node = getattr(size, part)
        if per_node:
            assert packed.new_nodes >= math.ceil(demand / per_node) or demand == 0
    for key in packed.too_large:
        assert not needs[key].fits_in(size)
    if packed.unplaced:
        assert packed.new_nodes == limit
