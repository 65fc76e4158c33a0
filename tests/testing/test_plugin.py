"""The ``tavkit.testing`` plugin used as an integrator uses it: a test file of theirs, run
by pytest in a subprocess (``pytester``), with real calls through a real server.

Each test writes one integrator test file and checks that it passed; the inner files
use ``@pytest.mark.asyncio`` (pytest-asyncio's strict default), as a project that has
not configured anything would.
"""

from __future__ import annotations

import textwrap
from importlib.metadata import entry_points

import pytest
from conftest import PG_URL

pytest_plugins = ["pytester"]


def _plugin_args() -> list[str]:
    """``-p tavkit.testing.plugin`` unless the installed entry point loads it already."""
    if any(ep.value == "tavkit.testing.plugin" for ep in entry_points(group="pytest11")):
        return []
    return ["-p", "tavkit.testing.plugin"]


def run_integrator_test(pytester: pytest.Pytester, source: str, *args: str, passed: int = 1) -> str:
    """Write ``source`` as the integrator's test file, run it (with ``args``), require
    ``passed`` passes."""
    pytester.makepyfile(test_integrator=textwrap.dedent(source))
    result = pytester.runpytest_subprocess(
        *_plugin_args(),
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::DeprecationWarning",
        "-rA",
        *args,
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, output
    result.assert_outcomes(passed=passed)
    return output


def test_ten_line_test_makes_a_two_participant_call(pytester: pytest.Pytester) -> None:
    """The documented ten-line test passes: two participants decode each other, no errors,
    and the app's webhook receiver got both joins."""
    run_integrator_test(
        pytester,
        """
        import pytest
        from tavkit.testing import assert_call_connected, assert_no_errors

        @pytest.mark.asyncio
        async def test_alice_and_bob_see_each_other(tavkit_server, participant):
            alice = await participant("alice")
            bob = await participant("bob")
            await alice.wait_for_video_from("bob", frames=30)
            await bob.wait_for_video_from("alice", frames=30)
            assert_call_connected(alice, bob)
            assert_no_errors(tavkit_server, alice, bob)
            joined = await tavkit_server.webhooks.wait_for("member.joined", count=2)
            assert sorted(e["data"]["userId"] for e in joined) == ["alice", "bob"]
            assert {e["roomUuid"] for e in joined} == {alice.room_uuid}
        """,
    )


def test_the_server_stack_loads_cheaply_and_leaves_python_as_it_was(
    pytester: pytest.Pytester,
) -> None:
    """With the plugin loaded, pytest's assertion rewriting keeps to
    ``tavkit.testing.assertions`` (whose failures explain themselves) while the server
    stack loads from its bytecode; the fixture imports it with the garbage collector
    paused, then leaves the collector on with what it loaded frozen."""
    run_integrator_test(
        pytester,
        """
        import gc
        import sys

        from _pytest.assertion.rewrite import AssertionRewritingHook

        def rewritten(name):
            return isinstance(sys.modules[name].__loader__, AssertionRewritingHook)

        def test_loaders(tavkit_server):
            import tavkit.testing.assertions

            assert tavkit_server.sessions() == []
            assert rewritten("tavkit.testing.assertions")
            assert not rewritten("tavkit.server.app")
            assert not rewritten("tavkit.protocol")
            assert gc.isenabled()
            assert gc.get_freeze_count() > 10_000
        """,
    )


def test_a_message_reaches_the_other_participant_on_postgresql(
    pytester: pytest.Pytester,
) -> None:
    """With ``--tavkit-database-url`` the server runs on PostgreSQL, and a text message sent
    by one participant is in the other's ``messages``, from its sender."""
    run_integrator_test(
        pytester,
        """
        import pytest

        @pytest.mark.asyncio
        async def test_doctor_sends_the_prescription(tavkit_server, participant):
            doctor = await participant("doctor", room=7)
            patient = await participant("patient", room=7)
            await patient.wait_for_member("doctor")
            sent = await doctor.send_message("prescription 4711")
            got = await patient.wait_for_message("prescription 4711", sender="doctor")
            assert got.seq == sent.seq
            assert [m.text for m in patient.messages] == ["prescription 4711"]
            assert tavkit_server.database.kind == "postgres"
        """,
        "--tavkit-database-url",
        PG_URL,
    )


def test_a_blackout_resumes_the_same_membership(pytester: pytest.Pytester) -> None:
    """After a 3 s blackout of one participant's whole network its socket resumes, nobody
    sees it leave, and media flows again both ways."""
    run_integrator_test(
        pytester,
        """
        import pytest
        from tavkit.testing import assert_call_connected

        @pytest.mark.asyncio
        async def test_tunnel(participant):
            alice = await participant("alice")
            bob = await participant("bob")
            await bob.wait_for_video_from("alice", frames=10)
            session = alice.room_uuid

            await alice.blackout(3.0)
            assert alice.network.dropped > 0
            await bob.wait_for_video_from("alice", frames=20, more=True)
            await alice.wait_for_video_from("bob", frames=20, more=True)
            await alice.wait_for(lambda: alice.resumes >= 1, "the socket resumed")
            assert alice.room_uuid == session
            assert not any(e[0] == "on_user_leave" for e in bob.events)
            assert_call_connected(alice, bob)
        """,
    )


def test_loss_shows_in_stats_and_reported_quality(pytester: pytest.Pytester) -> None:
    """30 % loss on one participant's network shows as lost packets in its receivers' stats
    and as packet loss in the quality samples it reported to the server."""
    run_integrator_test(
        pytester,
        """
        import pytest

        @pytest.mark.asyncio
        async def test_lossy_patient(tavkit_server, participant):
            doctor = await participant("doctor")
            patient = await participant("patient", seed=7)
            await patient.wait_for_video_from("doctor", frames=10)
            session = patient.room_uuid

            patient.impair(loss=0.3)
            await patient.wait_for_video_from("doctor", frames=60, more=True)  # 2 s or more
            stats = await patient.stats("doctor")
            assert stats["packetsLost"] > 0, stats
            await patient.leave()  # flushes the last quality sample

            samples = tavkit_server.quality(session)
            lossy = [s for s in samples if s["userId"] == "patient" and s.get("packetLoss")]
            assert lossy and max(s["packetLoss"] for s in lossy) > 0.05, samples
        """,
    )


def test_delay_shows_in_the_round_trip_time(pytester: pytest.Pytester) -> None:
    """100 ms of added delay each way (jitter 10 ms) on one participant's network makes
    the RTT both sides measure exceed 150 ms (about 200 ms, less when the jitter draws
    short); cleared, it falls back under 100 ms."""
    run_integrator_test(
        pytester,
        """
        import pytest

        async def rtt(p, other):
            return (await p.quality()).get(other, {}).get("rtt", 0.0)

        @pytest.mark.asyncio
        async def test_far_away(participant):
            near = await participant("near")
            far = await participant("far")
            await far.wait_for_video_from("near", frames=10)
            far.impair(delay=0.1, jitter=0.01)
            rtts = {}

            async def measured():
                rtts["far"], rtts["near"] = await rtt(far, "near"), await rtt(near, "far")
                return min(rtts.values()) > 0.15

            for _ in range(100):
                if await measured():
                    break
                await far.wait_for_video_from("near", frames=3, more=True)
            assert min(rtts.values()) > 0.15, rtts
            far.network.clear()
            for _ in range(100):
                await measured()
                if max(rtts.values()) < 0.1:
                    break
                await far.wait_for_video_from("near", frames=3, more=True)
            assert max(rtts.values()) < 0.1, rtts
        """,
    )


def test_a_decoded_frame_has_the_colour_that_was_sent(pytester: pytest.Pytester) -> None:
    """Each side's last decoded frame has the solid colour the other side published, read
    both as a mean colour and as a numpy array; the tone is audible."""
    run_integrator_test(
        pytester,
        """
        import pytest

        def close(a, b, tolerance=16):
            return all(abs(x - y) <= tolerance for x, y in zip(a, b))

        @pytest.mark.asyncio
        async def test_colours(participant):
            red = await participant("red", colour=(200, 40, 40))
            blue = await participant("blue", colour=(40, 60, 200))
            await red.wait_for_video_from("blue", frames=20)
            await blue.wait_for_video_from("red", frames=20)
            assert close(blue.mean_colour("red"), (200, 40, 40)), blue.mean_colour("red")
            assert close(red.mean_colour("blue"), (40, 60, 200)), red.mean_colour("blue")
            image = red.last_image("blue")
            assert image.shape == (240, 320, 3)
            assert close(image.reshape(-1, 3).mean(axis=0), (40, 60, 200))
            await red.wait_for_audio_from("blue", frames=10)
            assert red.audio_level("blue") > 0.05
        """,
    )


@pytest.mark.browser
def test_a_browser_participant_calls_a_python_one(pytester: pytest.Pytester) -> None:
    """A ``<tavkit-call>`` tab in Chromium and a Python participant decode each other's video."""
    run_integrator_test(
        pytester,
        """
        import pytest

        @pytest.mark.asyncio
        async def test_browser_and_python(participant, browser_participant):
            alice = await participant("alice")
            carol = await browser_participant("carol")
            await alice.wait_for_video_from("carol", frames=30)
            await carol.wait_for_video_from("alice", frames=30)
            assert await carol.video_frames_from("alice") >= 30
            assert await carol.errors() == []
        """,
    )


def test_the_waits_and_assertions_fail_saying_what_is_missing(pytester: pytest.Pytester) -> None:
    """A wait that times out names the frames it waited for, ``assert_call_connected`` on
    participants in different rooms fails, and a refused userSig raises the server's error."""
    run_integrator_test(
        pytester,
        """
        import pytest
        from tavkit.errors import TAvKitError
        from tavkit.testing import assert_call_connected

        @pytest.mark.asyncio
        async def test_failures(participant):
            alice = await participant("alice", room=1)
            bob = await participant("bob", room=2)
            with pytest.raises(AssertionError, match="30 video frames from bob"):
                await alice.wait_for_video_from("bob", frames=30, within=0.5)
            with pytest.raises(AssertionError, match="not in the same session"):
                assert_call_connected(alice, bob)
            with pytest.raises(TAvKitError, match="70346"):
                await participant("eve", user_sig="not-a-signature")
        """,
    )


def test_an_address_change_restarts_the_call_on_a_new_connection(
    pytester: pytest.Pytester,
) -> None:
    """When the participant whose offer made the session moves to a new address, its
    socket resumes and it restarts the call on a new peer connection (tavkit's ICE
    restart: aiortc has none), both sides count a second connection, and media flows
    both ways; when the answerer moves, the offerer's ICE agent follows it on the same
    connection and media flows both ways again."""
    run_integrator_test(
        pytester,
        """
        import pytest
        from tavkit.testing import assert_call_connected

        @pytest.mark.asyncio
        async def test_patient_walks_out_of_wifi(participant):
            doctor = await participant("doctor")
            patient = await participant("patient")  # the newcomer offers
            await doctor.wait_for_video_from("patient", frames=10)
            await patient.wait_for_video_from("doctor", frames=10)
            assert patient.connections_with("doctor") == doctor.connections_with("patient") == 1

            assert await patient.change_address() > 0
            await patient.wait_for(lambda: patient.connections_with("doctor") == 2, "a restart")
            await doctor.wait_for(lambda: doctor.connections_with("patient") == 2, "a restart")
            await patient.wait_for_video_from("doctor", frames=20, more=True)
            await doctor.wait_for_video_from("patient", frames=20, more=True)
            assert patient.resumes >= 1
            assert patient.kit.peers["doctor"].rebuilds >= 1
            assert_call_connected(doctor, patient)

            assert await doctor.change_address() > 0  # the answerer moves
            await doctor.wait_for_video_from("patient", frames=20, more=True)
            await patient.wait_for_video_from("doctor", frames=20, more=True)
            assert doctor.resumes >= 1
            assert patient.connections_with("doctor") == doctor.connections_with("patient") == 2
        """,
    )


def test_a_receive_cap_limits_what_arrives_not_what_is_sent(pytester: pytest.Pytester) -> None:
    """A 100 kbit/s cap on what one participant receives brings the bitrate reaching it
    under the cap (from well above it), drops datagrams on its side only (the sender's
    network is untouched), and shows in the received bitrate it reports to the server."""
    run_integrator_test(
        pytester,
        """
        import asyncio
        import pytest

        async def received_bitrate(p, other, seconds=1.0):
            loop = asyncio.get_running_loop()
            before, began = (await p.quality())[other]["bytesReceived"], loop.time()
            await asyncio.sleep(seconds)
            after = (await p.quality())[other]["bytesReceived"]
            return (after - before) * 8 / (loop.time() - began)

        @pytest.mark.asyncio
        async def test_patient_on_a_thin_line(tavkit_server, participant):
            doctor = await participant("doctor")
            patient = await participant("patient")
            await patient.wait_for_video_from("doctor", frames=10)
            free = await received_bitrate(patient, "doctor")
            assert free > 200_000, free

            patient.impair(receive_bandwidth=100_000)
            await asyncio.sleep(0.5)  # the half-second queue fills
            capped = await received_bitrate(patient, "doctor")
            assert capped < 120_000, (free, capped)
            assert patient.network.dropped > 0
            assert doctor.network.dropped == 0 and doctor.network.conditions.clear
            session = patient.room_uuid
            await patient.leave()  # flushes the last quality sample

            reported = [
                s["bitrateInKbps"]
                for s in tavkit_server.quality(session)
                if s["userId"] == "patient" and "bitrateInKbps" in s
            ]
            assert 0 < reported[-1] < 120, reported  # kbit/s, the last sample's, all capped
        """,
    )
