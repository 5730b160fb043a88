from flask import render_template

from app.admin.blueprint import admin
from app.scheduling import status
from app.web.session import admin_required


@admin.get("/schedules")
@admin_required
def schedules():
    return render_template(
        "admin/schedules.html", rows=status.schedule_rows(), leader=status.leader()
    )
