"""CommandDispatcher and Delivery over the in-memory PLC link: which outcome each fault
earns, what reached the PLC and when, and no write that could not arrive in time.

Outcomes are awaited through the dispatcher's `on_outcome` callback (never through what
`submit` returns)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.config.station import StationSignals
from agent.control.counters import CommandCounters
from agent.control.dispatcher import CommandDispatcher
from agent.protocols.base import SinkState
from agent.types import Command, CommandKind, CommandOutcome, OutcomeStatus
from tests.support.fake_plc_link import FakePlcLink, Fault, command, wait_for

KEY = ("line1", "station1")
STOP, REJECT, ALARM = "coil:0", "coil:1", "coil:2"
CODE, COUNT, SEQ = "hr:10", "hr:11", "hr:12"
DATA = [CODE, COUNT, SEQ]
FULL = StationSignals(stop_request=STOP, reject=REJECT, alarm=ALARM, defect_code=CODE,
                      defect_count=COUNT, last_event_seq=SEQ)


class Rig:
    """A dispatcher on a fake link, its outcomes collected by the callback."""

    def __init__(self, link: FakePlcLink | None = None, sig: StationSignals = FULL, *,
                 request_timeout: float = 0.2, pulse_ms: int = 30,
                 counters: CommandCounters | None = None) -> None:
        self.link = link or FakePlcLink()
        self.outcomes: list[CommandOutcome] = []
        self._waiting: dict[str, asyncio.Future[CommandOutcome]] = {}
        self.sig = sig
        self.disp = CommandDispatcher(self.link, {KEY: sig}, self._on_outcome,
                                      request_timeout=request_timeout, retry_s=0.005,
                                      flush_timeout=0.5, reject_pulse_ms={KEY: pulse_ms},
                                      counters=counters)

    def _on_outcome(self, outcome: CommandOutcome) -> None:
        self.outcomes.append(outcome)
        fut = self._waiting.pop(outcome.command.event_id, None)
        if fut is not None and not fut.done():
            fut.set_result(outcome)

    async def __aenter__(self) -> Rig:
        await self.link.start()
        await self.disp.start()
        if self.link.state is SinkState.CONNECTED:
            await self.settled()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disp.stop()
        await self.link.close()

    async def settled(self) -> None:
        """The start-up signal check read every signal, the keeper wrote what it owns."""
        mapped = sum(a is not None for a in self.sig.model_dump().values())
        await wait_for(lambda: len(self.link.attempts(op="read")) >= mapped
                       and not self.disp.outputs.busy(), what="start-up reads and writes")

    async def run(self, cmd: Command) -> CommandOutcome:
        fut: asyncio.Future[CommandOutcome] = asyncio.get_running_loop().create_future()
        self._waiting[cmd.event_id] = fut
        self.disp.submit(cmd)
        return await asyncio.wait_for(fut, max(0.0, cmd.deadline - cmd.created) + 2.0)


def sent_before_deadline(link: FakePlcLink, cmd: Command, addresses: list[str]) -> bool:
    return all(r.t < cmd.deadline for a in addresses for r in link.attempts(a))


# -- acked, and the data before the strobe ----------------------------------------------
async def test_data_is_acknowledged_before_the_strobe_goes_out_one_write_at_a_time() -> None:
    async with Rig(FakePlcLink(batch=False)) as rig:  # a link that cannot batch the data
        cmd = command(CommandKind.STOP, code=302)
        out = await rig.run(cmd)
    assert out.status is OutcomeStatus.ACKED and out.attempts == 1 and out.error is None
    reqs = [r for r in rig.link.attempts() if r.t >= cmd.created]
    assert [(r.items[0][0], r.items[0][1]) for r in reqs] == [
        (CODE, 302), (COUNT, 1), (SEQ, 1), (STOP, True)]
    for before, after in zip(reqs, reqs[1:], strict=False):
        assert before.answered_at is not None and before.answered_at <= after.t
    assert out.latency_ms is not None and reqs[-1].answered_at is not None
    acked_at = cmd.created + out.latency_ms / 1000  # latency: created -> strobe acknowledged
    assert reqs[-1].answered_at - 1e-6 <= acked_at < reqs[-1].answered_at + 0.05


async def test_a_batching_link_gets_the_data_in_one_request_then_the_strobe() -> None:
    async with Rig() as rig:
        cmd = command(CommandKind.REJECT, code=7)
        out = await rig.run(cmd)
    assert out.status is OutcomeStatus.ACKED
    data, strobe = [r for r in rig.link.attempts() if r.t >= cmd.created][:2]
    assert data.items == [(CODE, 7), (COUNT, 1), (SEQ, 1)] and strobe.items == [(REJECT, True)]
    assert rig.disp.stats().write_attempts >= 2


async def test_data_sent_without_an_answer_is_not_sent_again_and_the_strobe_follows() -> None:
    async with Rig() as rig:
        rig.link.script(Fault.no_answer(), address=CODE)
        out = await rig.run(command(CommandKind.STOP, code=303))
    assert out.status is OutcomeStatus.ACKED and out.attempts == 1
    assert len(rig.link.attempts(CODE)) == 1 and rig.link.written(CODE) == [303]
    assert rig.link.written(STOP) == [True]
    assert "sent, not acknowledged" in (out.error or "")  # acked, and it says what is unsure


async def test_data_never_sent_is_sent_again_before_the_strobe() -> None:
    async with Rig() as rig:
        rig.link.script(Fault.unavailable(), address=CODE)
        cmd = command(CommandKind.STOP, code=304)
        out = await rig.run(cmd)
    assert out.status is OutcomeStatus.ACKED and out.error is None
    kinds = [(r.addresses[0], r.outcome) for r in rig.link.attempts() if r.t >= cmd.created]
    assert kinds == [(CODE, "unavailable"), (CODE, "ok"), (STOP, "ok")]


async def test_refused_data_does_not_hold_back_the_strobe_and_is_named() -> None:
    async with Rig() as rig:
        rig.link.refuse(CODE, "illegal data address")
        out = await rig.run(command(CommandKind.STOP))
    assert out.status is OutcomeStatus.ACKED and rig.link.written(STOP) == [True]
    assert "defect_code, defect_count, last_event_seq not written" in (out.error or "")


async def test_an_opcua_stop_method_is_called_after_the_data() -> None:
    link = FakePlcLink(stop_method=("ns=2;s=Line1", "ns=2;s=Stop"))
    async with Rig(link) as rig:
        cmd = command(CommandKind.STOP, code=305)
        out = await rig.run(cmd)
        await asyncio.sleep(0.05)
    assert out.status is OutcomeStatus.ACKED
    reqs = [r for r in link.attempts() if r.t >= cmd.created]
    assert [r.items for r in reqs] == [[(CODE, 305), (COUNT, 1), (SEQ, 1)],
                                        [("ns=2;s=Line1|ns=2;s=Stop", 305)]]
    assert link.written(STOP) == []  # no stop bit: the method is the stop (and not kept)


# -- unconfirmed, and no retry that cannot arrive ----------------------------------------
async def test_unanswered_strobe_is_unconfirmed_and_not_retried_when_it_could_not_arrive() -> None:
    async with Rig(request_timeout=0.5) as rig:
        rig.link.script(Fault.no_answer(after_s=0.12), address=STOP)
        cmd = command(CommandKind.STOP, deadline_s=0.2)
        out = await rig.run(cmd)
    # 0.08 s were left, and a write that went unanswered for 0.12 s may need twice that
    assert out.status is OutcomeStatus.UNCONFIRMED and out.attempts == 1
    assert len(rig.link.attempts(STOP)) == 1
    assert "may have taken effect" in (out.error or "") and "no retry" in (out.error or "")
    assert sent_before_deadline(rig.link, cmd, [STOP, *DATA])


async def test_unanswered_strobe_is_retried_while_a_retry_can_arrive() -> None:
    async with Rig(request_timeout=0.5) as rig:
        rig.link.script(Fault.no_answer(after_s=0.03, applied=False), address=STOP)
        out = await rig.run(command(CommandKind.STOP, deadline_s=1.0))
    assert out.status is OutcomeStatus.ACKED and out.attempts == 2
    assert rig.disp.stats().retries == 1 and rig.link.written(STOP) == [True]


async def test_no_attempt_starts_when_the_round_trip_is_longer_than_what_is_left() -> None:
    link = FakePlcLink(round_trip_s=0.3)
    async with Rig(link, request_timeout=0.5) as rig:
        cmd = command(CommandKind.STOP, deadline_s=0.15)
        out = await rig.run(cmd)
    assert out.status is OutcomeStatus.EXPIRED and out.attempts == 0
    assert "a write needs about 301 ms" in (out.error or "")  # the round trip + SEND_MARGIN_S
    assert [r for r in link.attempts() if r.t >= cmd.created] == []


async def test_a_slow_probe_round_trip_counts_at_most_the_request_timeout() -> None:
    link = FakePlcLink(round_trip_s=5.0)  # a slow read once: says little about a write
    async with Rig(link, request_timeout=0.05) as rig:
        out = await rig.run(command(CommandKind.STOP, deadline_s=0.5))
    assert out.status is OutcomeStatus.ACKED


# -- failed ---------------------------------------------------------------------------------
async def test_busy_until_the_deadline_is_failed_and_nothing_goes_out_after_it() -> None:
    async with Rig() as rig:
        rig.link.script(*[Fault.busy() for _ in range(1000)], address=STOP)
        cmd = command(CommandKind.STOP, deadline_s=0.1)
        out = await rig.run(cmd)
        await asyncio.sleep(0.05)
    assert out.status is OutcomeStatus.FAILED and out.attempts >= 2  # busy is retried
    assert "not acknowledged by the deadline" in (out.error or "")
    assert sent_before_deadline(rig.link, cmd, [STOP, *DATA])
    assert rig.link.written(STOP) == [] and rig.link.stats().busy == out.attempts


async def test_data_that_took_all_the_time_fails_the_command_never_sending_the_strobe() -> None:
    async with Rig(request_timeout=0.5) as rig:
        rig.link.script(Fault.no_answer(after_s=0.1), address=CODE)
        cmd = command(CommandKind.STOP, deadline_s=0.15)
        out = await rig.run(cmd)
    assert out.status is OutcomeStatus.FAILED and out.attempts == 0  # the data went out
    assert "never sent (the data before it took the time)" in (out.error or "")
    assert rig.link.attempts(STOP) == []


async def test_refused_strobe_fails_at_once_and_is_not_kept_after_a_reconnect() -> None:
    async with Rig() as rig:
        rig.link.refuse(STOP, "illegal data address")
        out = await rig.run(command(CommandKind.STOP, deadline_s=2.0))
        assert out.status is OutcomeStatus.FAILED and out.attempts == 1
        assert (out.error or "").startswith("PLC refused stop_request")
        assert rig.disp.stats().refused == 1 and rig.link.stats().refused[STOP]
        rig.link.accept(STOP)
        restores = rig.disp.outputs.restores
        rig.link.disconnect()
        rig.link.connect()
        await wait_for(lambda: rig.disp.outputs.restores > restores, what="restore")
        await wait_for(lambda: not rig.disp.outputs.busy(), what="outputs written")
    assert len(rig.link.attempts(STOP)) == 1  # never written again: it was never set


# -- expired --------------------------------------------------------------------------------
async def test_expired_while_disconnected_is_not_written_after_the_reconnect() -> None:
    async with Rig() as rig:
        rig.link.disconnect()
        cmd = command(CommandKind.STOP, deadline_s=0.05)
        out = await rig.run(cmd)
        assert out.status is OutcomeStatus.EXPIRED and out.attempts == 0
        assert out.latency_ms is None and "deadline passed" in (out.error or "")
        restores = rig.disp.outputs.restores
        rig.link.connect()
        await wait_for(lambda: rig.disp.outputs.restores > restores, what="restore")
        await asyncio.sleep(0.05)
    assert [r for r in rig.link.attempts() if r.t >= cmd.created and r.outcome != "unavailable"
            and set(r.addresses) & {STOP, *DATA}] == []


# -- reject pulses and outputs kept ---------------------------------------------------------
async def test_reject_pulse_lasts_its_length_and_its_end_is_retried_until_written() -> None:
    async with Rig(pulse_ms=40) as rig:
        cmd = command(CommandKind.REJECT)
        out = await rig.run(cmd)
        rig.link.script(Fault.busy(), Fault.unavailable(), address=REJECT)  # the pulse end
        await wait_for(lambda: rig.link.values[REJECT] is False, what="pulse end")
    assert out.status is OutcomeStatus.ACKED
    on, off = [r for r, _, _ in rig.link.writes(REJECT) if r.t >= cmd.created]
    assert on.items == [(REJECT, True)] and off.items == [(REJECT, False)]
    assert on.answered_at is not None and off.t - on.answered_at >= 0.04
    assert rig.disp.stats().pulse_failures == 2


async def test_reject_pulse_ends_after_the_link_comes_back() -> None:
    async with Rig(pulse_ms=20) as rig:
        out = await rig.run(command(CommandKind.REJECT))
        rig.link.disconnect()
        await asyncio.sleep(0.06)  # past the pulse end, while the link is down
        assert rig.link.written(REJECT)[-1] is True
        rig.link.connect()
        await wait_for(lambda: rig.link.written(REJECT)[-1] is False, what="pulse end")
    assert out.status is OutcomeStatus.ACKED


async def test_a_bug_in_the_link_during_a_reject_still_ends_the_pulse() -> None:
    async with Rig(pulse_ms=20) as rig:
        rig.link.script(Fault.raises(RuntimeError("bug in a link"), applied=True), address=REJECT)
        out = await rig.run(command(CommandKind.REJECT))
        assert out.status is OutcomeStatus.FAILED
        assert "internal error: RuntimeError: bug in a link" in (out.error or "")
        assert rig.link.values[REJECT] is True  # the ON reached the PLC before the error
        await wait_for(lambda: rig.link.values[REJECT] is False, what="the reject bit low")
        await wait_for(lambda: not rig.disp.outputs.busy(), what="outputs settled")


async def test_outputs_are_put_back_after_a_reconnect_as_the_commands_left_them() -> None:
    async with Rig() as rig:
        rig.link.script(Fault.no_answer(after_s=0.06, applied=False), address=STOP)
        stop = await rig.run(command(CommandKind.STOP, deadline_s=0.1))
        alarm = await rig.run(command(CommandKind.ALARM))
        assert stop.status is OutcomeStatus.UNCONFIRMED and alarm.status is OutcomeStatus.ACKED
        assert rig.link.written(STOP) == []  # the stop never reached the PLC
        restores = rig.disp.outputs.restores
        rig.link.values.clear()  # the PLC restarts and forgets its outputs
        rig.link.disconnect()
        await asyncio.sleep(0.03)
        assert rig.link.values == {}  # nothing written while down
        rig.link.connect()
        await wait_for(lambda: len(rig.link.values) == 3, what="outputs written again")
        # an unconfirmed stop may have taken effect: it is put right, as are alarm and reject
        assert rig.link.values == {STOP: True, ALARM: True, REJECT: False}
        assert rig.disp.outputs.restores == restores + 1
        reset = await rig.run(command(CommandKind.RESET))
        assert reset.status is OutcomeStatus.ACKED
        rig.link.disconnect()
        rig.link.connect()
        await wait_for(lambda: rig.disp.outputs.restores == restores + 2, what="second restore")
        await wait_for(lambda: not rig.disp.outputs.busy(), what="outputs written")
        assert rig.link.values[STOP] is False and rig.link.values[ALARM] is False


# -- outcomes reported once, counters across a restart -------------------------------------
async def test_a_broken_outcome_callback_is_counted_and_the_next_command_goes() -> None:
    link = FakePlcLink()
    seen: list[CommandOutcome] = []

    def callback(outcome: CommandOutcome) -> None:
        seen.append(outcome)
        if len(seen) == 1:
            raise ValueError("broken consumer")

    disp = CommandDispatcher(link, {KEY: FULL}, callback, retry_s=0.005)
    await link.start()
    await disp.start()
    try:
        disp.submit(command(CommandKind.ALARM))
        disp.submit(command(CommandKind.STOP))
        await wait_for(lambda: len(seen) == 2, what="two outcomes")
    finally:
        await disp.stop()
    assert [o.status for o in seen] == [OutcomeStatus.ACKED, OutcomeStatus.ACKED]
    assert disp.stats().outcome_callback_errors == 1 and link.written(STOP) == [True]


async def test_sequence_never_repeats_across_a_crash_and_counts_go_on(tmp_path: Path) -> None:
    path = tmp_path / "plc-plc1.counters.json"
    first = Rig(counters=CommandCounters.load(path))
    async with first:
        for kind in (CommandKind.REJECT, CommandKind.STOP, CommandKind.ALARM):
            assert (await first.run(command(kind))).status is OutcomeStatus.ACKED
        await wait_for(lambda: '"line1/station1": 2' in path.read_text(), what="count saved")
        # the daemon dies here: the next run starts from the file as it is now
        second = Rig(counters=CommandCounters.load(path))
        async with second:
            for kind in (CommandKind.STOP, CommandKind.REJECT):
                assert (await second.run(command(kind))).status is OutcomeStatus.ACKED
    seqs = first.link.written(SEQ) + second.link.written(SEQ)
    counts = first.link.written(COUNT) + second.link.written(COUNT)
    assert seqs[:2] == [1, 2] and seqs[2] > 3 and seqs[3] == seqs[2] + 1  # the alarm took 3
    assert counts == [1, 2, 3, 4]
