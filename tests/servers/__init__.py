"""Real servers started by the test-suite (no mocks): see ``dovecot.py``."""
