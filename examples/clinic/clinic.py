"""A small clinic backend that books video consultations on a tavkit server.

What a real integrator's backend does, in 60 lines: it owns the tavkit app key, so the
browser (or app) of a doctor or patient never sees it; a consultation gets a room
number, and each side gets a userSig for its own userId, minted here.

Run it: ``TAVKIT_SERVER=http://127.0.0.1:8080 TAVKIT_SDK_APP_ID=... TAVKIT_KEY=...
uvicorn --factory clinic:app_from_environment``. ``test_clinic.py`` beside it tests
it with ``tavkit.testing``.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from tavkit.auth import gen_user_sig

USER_ID = r"^[A-Za-z0-9_.@-]{1,64}$"


@dataclass(frozen=True)
class TavkitApp:
    """The tavkit server this clinic books rooms on, and its app's credentials."""

    server: str
    sdk_app_id: int
    key: str


class Booking(BaseModel):
    """Who meets: the doctor's and the patient's userIds."""

    doctor: str = Field(pattern=USER_ID)
    patient: str = Field(pattern=USER_ID)


def create_clinic(tavkit: TavkitApp, *, first_room: int = 1000) -> FastAPI:
    """The clinic's API: ``POST /consultations`` and ``GET /consultations/{id}/join/{userId}``."""
    app = FastAPI(title="clinic")
    rooms = itertools.count(first_room)
    consultations: dict[int, Booking] = {}

    @app.post("/consultations", status_code=201)
    def book(booking: Booking) -> dict[str, object]:
        """Book a consultation: a room of its own on the tavkit server."""
        room_id = next(rooms)
        consultations[room_id] = booking
        return {
            "id": room_id,
            "roomId": room_id,
            "doctor": booking.doctor,
            "patient": booking.patient,
        }

    @app.get("/consultations/{consultation_id}/join/{user_id}")
    def join(consultation_id: int, user_id: str) -> dict[str, object]:
        """What the doctor's or the patient's call needs: server, app, room, their userSig."""
        booking = consultations.get(consultation_id)
        if booking is None:
            raise HTTPException(404, "no such consultation")
        if user_id not in (booking.doctor, booking.patient):
            raise HTTPException(403, "not a participant of this consultation")
        return {
            "server": tavkit.server,
            "sdkAppId": tavkit.sdk_app_id,
            "roomId": consultation_id,
            "userId": user_id,
            "userSig": gen_user_sig(tavkit.sdk_app_id, tavkit.key, user_id, 3600),
        }

    return app


def app_from_environment() -> FastAPI:
    """The clinic configured from ``TAVKIT_SERVER``, ``TAVKIT_SDK_APP_ID``, ``TAVKIT_KEY``."""
    return create_clinic(
        TavkitApp(
            os.environ.get("TAVKIT_SERVER", "http://127.0.0.1:8080"),
            int(os.environ.get("TAVKIT_SDK_APP_ID", "0")),
            os.environ.get("TAVKIT_KEY", ""),
        )
    )
