"""The call journal (SPEC §9): every call and each of its state changes."""

from platforma_c2d.store.journal import Journal
from platforma_c2d.store.writer import JournalWriter

__all__ = ["Journal", "JournalWriter"]
