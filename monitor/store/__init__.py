"""The SQLite store: messages, conversations, cursors and the alert outbox."""

from monitor.store.ingest import IngestResult, SourceSink
from monitor.store.sqlite import Store, StoredConversation, StoredMessage

__all__ = ["IngestResult", "SourceSink", "Store", "StoredConversation", "StoredMessage"]
