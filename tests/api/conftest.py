from tests.api.job_helpers import failed_job, jobs  # noqa: F401  (fixtures)
