"""The agents' database: appointments, tickets, demos and conversation records."""

from media_server.store.db import Database, StoreError, database_path

__all__ = ["Database", "StoreError", "database_path"]
