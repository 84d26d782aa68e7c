"""readyapp.py: a real pre-fork app for t/run-ready.bats, run by gunicorn
(a Flask app, as most of Heroku's Python users run):

    gunicorn -w 2 --chdir t/peers -b 127.0.0.1:$PORT readyapp:app

gunicorn binds $PORT first; each worker then imports this module, which
sleeps $READY_SLEEP seconds (default 3) the way a large app's imports do,
so the port accepts long before anything can answer.  Every request a
worker serves is appended to $READY_LOG (if set) as one line,
"DYNO PATH ARRIVED_MS", ARRIVED_MS the wall-clock ms it reached the worker.
  /          200 "Hello from DYNO"
  /healthz   200 "ok"; 503 while the file $READY_SICK exists
"""
import os
import time

time.sleep(float(os.environ.get("READY_SLEEP", "3")))

from flask import Flask  # noqa: E402  (after the slow import, on purpose)

app = Flask(__name__)
DYNO = os.environ.get("DYNO", "?")


@app.before_request
def log_request():
    from flask import request
    path = os.environ.get("READY_LOG")
    if path:
        with open(path, "a") as f:
            f.write("%s %s %d\n" % (DYNO, request.path,
                                    int(time.time() * 1000)))


@app.route("/")
def hello():
    return "Hello from %s" % DYNO


@app.route("/healthz")
def healthz():
    sick = os.environ.get("READY_SICK")
    if sick and os.path.exists(sick):
        return "sick", 503
    return "ok"
