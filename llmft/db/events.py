"""Job events: the rows that GET /api/v1/jobs/<id>/events and the job's stream show."""

from sqlalchemy.orm import Session

from llmft.db.tables import Job, JobEvent


def record_event(session: Session, job: Job, type_: str, message: str, data: dict | None = None,
                 level: str = "info") -> None:
    session.add(JobEvent(job_id=job.id, tenant_id=job.tenant_id, type=type_, message=message, data=data or {},
                         level=level))
