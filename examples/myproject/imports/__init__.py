"""The imports app: idempotent tasks that must survive a lost worker, routed to the queue ``imports``."""
