"""The clinic's consultations, tested with ``tavkit.testing``: a real tavkit server, a
doctor and a patient as Python participants entering with the signatures the clinic
minted, and the recordings the server made of their call."""

from __future__ import annotations

from importlib.metadata import entry_points

import httpx
import pytest
import pytest_asyncio
from clinic import TavkitApp, create_clinic

from tavkit.testing import assert_call_connected, assert_no_errors

# Not needed after `pip install tavkit[testing]`, whose entry point loads the plugin. In
# a virtualenv installed before the plugin existed, name it here (only then: loading
# it twice is an error).
if not any(ep.value == "tavkit.testing.plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["tavkit.testing.plugin"]


@pytest_asyncio.fixture
async def clinic(tavkit_server):
    """The clinic's API, in process, booking rooms on the test's tavkit server."""
    app = create_clinic(TavkitApp(tavkit_server.url, tavkit_server.app_id, tavkit_server.key))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://clinic") as http:
        yield http


async def join(clinic, participant, consultation, user_id):
    """Enter the consultation's room as ``user_id`` with the userSig the clinic gives."""
    answer = await clinic.get(f"/consultations/{consultation['id']}/join/{user_id}")
    assert answer.status_code == 200, answer.text
    ticket = answer.json()
    return await participant(user_id, room=ticket["roomId"], user_sig=ticket["userSig"])


@pytest.mark.asyncio
@pytest.mark.tavkit_server(recording="auto")
async def test_doctor_and_patient_see_each_other_and_the_call_is_recorded(
    tavkit_server, participant, clinic
):
    """A booked consultation: both sides enter with the clinic's signatures, see and hear
    each other, and after they hang up the server has a complete recording of each."""
    booked = await clinic.post("/consultations", json={"doctor": "dr-lee", "patient": "pat-9"})
    assert booked.status_code == 201, booked.text
    consultation = booked.json()

    doctor = await join(clinic, participant, consultation, "dr-lee")
    patient = await join(clinic, participant, consultation, "pat-9")
    await doctor.wait_for_video_from("pat-9", frames=30)
    await patient.wait_for_video_from("dr-lee", frames=30)
    assert_call_connected(doctor, patient)

    session = doctor.room_uuid
    await patient.leave()
    await doctor.leave()
    ready = await tavkit_server.webhooks.wait_for("recording.ready", count=2)
    assert {event["data"]["userId"] for event in ready} == {"dr-lee", "pat-9"}
    recordings = tavkit_server.recordings(session)
    assert {r["userId"] for r in recordings} == {"dr-lee", "pat-9"}
    assert all(r["size"] > 0 and r["hasVideo"] for r in recordings), recordings
    assert_no_errors(tavkit_server, doctor, patient)


@pytest.mark.asyncio
async def test_only_the_booked_people_get_a_signature(clinic):
    """Someone else asking for the consultation's signature is refused (403)."""
    booked = await clinic.post("/consultations", json={"doctor": "dr-lee", "patient": "pat-9"})
    consultation = booked.json()
    stranger = await clinic.get(f"/consultations/{consultation['id']}/join/mallory")
    assert stranger.status_code == 403
    missing = await clinic.get("/consultations/999999/join/dr-lee")
    assert missing.status_code == 404
