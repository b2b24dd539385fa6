"""The reports app: long, mostly waiting tasks routed to the queue ``reports`` (a gevent worker in the lab)."""
