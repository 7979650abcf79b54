"""Sources: adapters that read mailboxes and helpdesks and produce normalized message events."""
