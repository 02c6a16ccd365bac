"""Jobs: the SQL row decides who runs a job (leases with fencing tokens); Celery only dispatches."""
