"""The signaling socket (``GET /v1/ws``): one connection per socket, its registry, its tokens."""
