"""The `partition` pass's search: a device for every partition unit, by dynamic programming.

Rule: units are placed one by one in their (topological) order, and each partial placement is a
*state* simulated exactly: for `latency`, each device runs its units one at a time in unit order, a
unit starts when its device is free and its inputs are on it, and a value moves to another device
once (shared by every reader there) when it is ready and the link is free; graph inputs start on the
host and graph outputs end there. A copy runs on the queue of each end that is not the host (the
runtime enqueues it there, in order with that device's kernels), so it also waits for that device
and keeps it busy (for `throughput`: adds to its load as to the link's). The makespan is when the
last device, link or output finishes. For `throughput` (a stream of inputs), each device and link is
a pipeline stage whose load is the seconds it works per input; the period is the largest load.
Devices that compute on one processor (`DeviceModel.runs_on`: an OpenCL CPU device on the host's
cores) share one time: one unit at a time, one stage. States whose live values sit on the same
devices are compared componentwise (device and link times, live values' ready times, memory use); a
dominated state is dropped, and so is a state whose lower bound is no better than the best single-
device placement. Up to `exact_units` units with at most `max_states` states per step the result is
optimal for this model; beyond, only the `beam` best states by lower bound are kept (a heuristic),
and the answer is never worse than the best single-device placement. Lower bound: the larger of the
critical path (latency only) and the total fastest work spread over all devices. Imports this
package only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from passes.partition_cost import Problem

LATENCY, THROUGHPUT = "latency", "throughput"


@dataclasses.dataclass(frozen=True)
class State:
    device_time: tuple[float, ...]  # latency: when free; throughput: load
    link_time: tuple[float, ...]  # per device pair (a < b)
    live: tuple[tuple[int, tuple[float, ...]], ...]  # (value, ready time per device, inf: not there)
    done: float  # latency: when the last graph output reached the host
    memory: tuple[tuple[float, ...], tuple[float, ...]]  # weights and largest working set per device
    placed: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Result:
    placement: tuple[int, ...]  # device index per unit
    value: float  # predicted makespan or period (seconds)
    lower_bound: float
    exact: bool  # `value` is the optimum of the model (then `lower_bound` is `value`)


def objective(problem: Problem, state: State, mode: str) -> float:
    if mode == LATENCY:
        return max(*state.device_time, *state.link_time, state.done)
    return max(*state.device_time, *state.link_time)


def evaluate(problem: Problem, placement: tuple[int, ...], mode: str) -> float:
    """The objective of a full placement (inf when it breaks a memory budget or support)."""
    state: State | None = _initial(problem)
    for unit, device in enumerate(placement):
        assert state is not None
        state = _step(problem, state, unit, device, mode)
        if state is None:
            return math.inf
    assert state is not None
    return objective(problem, state, mode)


def search(
    problem: Problem, allowed: list[tuple[int, ...]], mode: str, exact_units: int, max_states: int, beam: int
) -> Result:
    """The best placement found (see the module rule)."""
    count = len(problem.seconds)
    best, best_value = _best_single_device(problem, allowed, mode)
    exact = count <= exact_units
    width = max_states if exact else beam
    bound = lower_bound(problem, mode)
    states = [_initial(problem)]
    for unit in range(count):
        grown = [s for state in states for d in allowed[unit] if (s := _step(problem, state, unit, d, mode))]
        grown = [s for s in grown if _bound(problem, s, unit, mode) < best_value * (1 - 1e-9)]
        states = _pareto(problem, grown)
        if len(states) > width:
            exact = False
            states = sorted(states, key=lambda s: _bound(problem, s, unit, mode))[:beam]
    for state in states:
        value = objective(problem, state, mode)
        if value < best_value:
            best, best_value = state.placed, value
    return Result(best, best_value, best_value if exact else min(bound, best_value), exact)


def lower_bound(problem: Problem, mode: str) -> float:
    fastest = [min(row) for row in problem.seconds]
    spread = math.fsum(fastest) / problem.processors
    if mode == THROUGHPUT:
        return max(spread, max(fastest, default=0.0))
    finish: list[float] = []
    for unit, reads in enumerate(problem.reads):
        ready = [finish[problem.producer[v]] for v in reads if problem.producer[v] >= 0]
        finish.append(max(ready, default=0.0) + fastest[unit])
    return max(spread, max(finish, default=0.0))


def _best_single_device(
    problem: Problem, allowed: list[tuple[int, ...]], mode: str
) -> tuple[tuple[int, ...], float]:
    """The best placement of every unit on one device (a unit only one device takes goes there)."""
    best: tuple[int, ...] = ()
    best_value = math.inf
    for device in range(len(problem.devices)):
        placement = tuple(device if device in choices else choices[0] for choices in allowed)
        value = evaluate(problem, placement, mode)
        if value < best_value:
            best, best_value = placement, value
    return best, best_value


def _initial(problem: Problem) -> State:
    width = len(problem.devices)
    host_ready = tuple(0.0 if d == problem.host else math.inf for d in range(width))
    live = tuple(
        (v, host_ready) for v, p in enumerate(problem.producer) if p < 0 and problem.last_use[v] >= 0
    )
    zeros = (0.0,) * width
    return State(zeros, (0.0,) * (width * (width - 1) // 2), live, 0.0, (zeros, zeros), ())


def _link(problem: Problem, a: int, b: int) -> int:
    low, high = min(a, b), max(a, b)
    width = len(problem.devices)
    return low * width - low * (low + 1) // 2 + (high - low - 1)


def _step(problem: Problem, state: State, unit: int, device: int, mode: str) -> State | None:
    """`state` with `unit` placed on `device` (None when a memory budget breaks)."""
    weights, working = list(state.memory[0]), list(state.memory[1])
    weights[device] += problem.weights[unit]
    working[device] = max(working[device], problem.working_set[unit])
    if weights[device] + working[device] > problem.budget[device]:
        return None
    times = list(state.device_time)
    links = list(state.link_time)
    live = {v: list(ready) for v, ready in state.live}
    done = state.done
    placed = (*state.placed, device)

    def move(value: int, to: int) -> float:
        ready = live[value]
        if ready[to] < math.inf:
            return ready[to]
        home = _home(problem, placed, value)
        cost = problem.transfer[value][home][to]
        link = _link(problem, home, to)
        queues = {problem.slot(d) for d in (home, to) if d != problem.host}  # the copy is on their queues
        if mode == THROUGHPUT:
            links[link] += cost
            for slot in queues:
                times[slot] += cost
            ready[to] = 0.0
        elif cost == 0:
            ready[to] = ready[home]
        else:
            ready[to] = max(ready[home], links[link], *(times[slot] for slot in queues)) + cost
            links[link] = ready[to]
            for slot in queues:
                times[slot] = ready[to]
        return ready[to]

    start = max((move(v, device) for v in problem.reads[unit]), default=0.0)
    seconds = problem.seconds[unit][device]
    slot = problem.slot(device)  # devices on one processor share its time
    if mode == THROUGHPUT:
        times[slot] += seconds
        end = 0.0
    else:
        end = max(start, times[slot]) + seconds
        times[slot] = end
    for value in problem.writes[unit]:
        live[value] = [end if d == device else math.inf for d in range(len(times))]
    for value in problem.writes[unit]:
        if problem.is_output[value]:
            done = max(done, move(value, problem.host))
    kept = tuple((v, tuple(r)) for v, r in sorted(live.items()) if problem.last_use[v] > unit)
    return State(tuple(times), tuple(links), kept, done, (tuple(weights), tuple(working)), placed)


def _home(problem: Problem, placed: tuple[int, ...], value: int) -> int:
    """The device a value is made on (the host for a graph input)."""
    producer = problem.producer[value]
    return problem.host if producer < 0 else placed[producer]


def _bound(problem: Problem, state: State, unit: int, mode: str) -> float:
    remaining = math.fsum(min(row) for row in problem.seconds[unit + 1 :])
    spread = (math.fsum(state.device_time) + remaining) / problem.processors
    return max(objective(problem, state, mode), spread)


def _pareto(problem: Problem, states: list[State]) -> list[State]:
    """The states no other state with the same live-value devices dominates."""
    buckets: dict[tuple, list[tuple[tuple[float, ...], State]]] = {}
    for state in states:
        key = tuple(
            (v, _home(problem, state.placed, v), tuple(r < math.inf for r in ready))
            for v, ready in state.live
        )
        vector = (
            *state.device_time,
            *state.link_time,
            state.done,
            *(r for _, ready in state.live for r in ready if r < math.inf),
            *state.memory[0],
            *state.memory[1],
        )
        buckets.setdefault(key, []).append((vector, state))
    kept: list[State] = []
    for entries in buckets.values():
        entries.sort(key=lambda e: e[0])  # a dominating vector sorts first
        vectors = np.array([vector for vector, _ in entries])
        front = np.empty((0, vectors.shape[1]))
        for vector, (_, state) in zip(vectors, entries, strict=True):
            if np.all(front <= vector, axis=1).any():
                continue
            front = np.vstack([front, vector])
            kept.append(state)
    return kept
