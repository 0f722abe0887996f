"""The data classes Atelier keeps, with their retention: one table, read by the README's
data protection section, "Mes données" and the retention job alike."""

from __future__ import annotations

from dataclasses import dataclass

from server.config import Settings


@dataclass(frozen=True, slots=True)
class DataClass:
    key: str
    label: str  # French, as the web client shows it
    days: int  # 0: kept forever
    note: str


def data_classes(settings: Settings) -> list[DataClass]:
    s = settings
    return [
        DataClass("chat", "Messages du chat", s.retention_chat_days, "supprimés après ce délai"),
        DataClass(
            "documents",
            "Documents et travaux",
            s.retention_documents_days,
            "depuis la dernière modification ; l'historique et les versions avec",
        ),
        DataClass(
            "versions",
            "Versions automatiques",
            s.retention_versions_days,
            "les versions nommées et les rendus restent avec leur document",
        ),
        DataClass("notifications", "Notifications", s.retention_notifications_days, "supprimées"),
        DataClass("audit", "Journal d'audit", s.retention_audit_days, "actions tracées"),
        DataClass(
            "logs",
            "Journaux techniques",
            s.retention_logs_days,
            "conservés par l'exploitant, jamais le contenu des messages ni des documents",
        ),
    ]
