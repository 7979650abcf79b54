"""replyclock: the SLA clock for shared support inboxes and helpdesks."""

__version__ = "0.1.0"
