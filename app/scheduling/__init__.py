"""Periodic jobs: which ones there are (``schedules``), the lease that lets one
scheduler process enqueue them (``lease``), and running one tick (``ticks``)."""
