"""The customers app: tasks routed to the queue ``customers``."""
