"""In-call messages (the seed's webim-component): the message service and its history route."""
