"""Client log and quality reporting (the seed's elk-component): ingest, queries, forwarder."""
