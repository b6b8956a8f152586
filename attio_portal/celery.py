"""The Celery app, configured from Django settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "attio_portal.settings")

app = Celery("attio_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Celery's Django fixup closes the database connection before and after every task
# unless this is set; a connection per task cost ~9 ms each in the sweep benchmark.
# The fixup still recycles the connection every so many tasks.
app.conf.update(CELERY_DB_REUSE_MAX=100)


@app.on_after_configure.connect
def create_broker_folders(sender: Celery, **kwargs) -> None:
    # kombu's filesystem transport expects its folders to exist.
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)
