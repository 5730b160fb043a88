"""The periodic and recovery work, each a service of one shape
(``app/maintenance/service.py``): the relay and the rescue, which the scheduler
runs itself, and the resend of failed emails and the cleanup, which it enqueues
as jobs. ``app/scheduling/schedules.py`` builds the schedule table from them."""
