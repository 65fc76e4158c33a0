"""Rooms (the seed's room server): membership, heartbeats, the sweeper, and their REST routes.

``service`` holds :class:`~tavkit.server.rooms.service.RoomService` (enter, exit,
heartbeat, remove, close); ``heartbeats`` the group-committed socket touches;
``queries`` the SQL each transaction runs; ``sweeper`` the task that times out the
silent; ``routes`` and ``access`` the REST side.
"""
