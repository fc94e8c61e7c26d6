"""of-watchdog's Python upstream for the ofw-python row (bench/run.sh): what
OpenFaaS's python3-http template runs behind of-watchdog in http mode, a
Flask app served by waitress (Debian's python3-flask and python3-waitress,
waitress with its default 4 threads), with a no-op handler. Listens on
127.0.0.1:$UPSTREAM_PORT."""
import os

from flask import Flask, request
from waitress import serve

app = Flask(__name__)


class Event:
    def __init__(self):
        self.body = request.get_data()
        self.headers = request.headers
        self.method = request.method
        self.query = request.args
        self.path = request.path


class Context:
    def __init__(self):
        self.hostname = os.getenv("HOSTNAME", "localhost")


def handle(event, context):
    return {"statusCode": 200, "body": {}}


@app.route("/", defaults={"path": ""}, methods=["GET", "PUT", "POST", "PATCH", "DELETE"])
@app.route("/<path:path>", methods=["GET", "PUT", "POST", "PATCH", "DELETE"])
def call_handler(path):
    res = handle(Event(), Context())
    # As the template: a dict body goes out as JSON, with its status code.
    return res["body"], res.get("statusCode", 200), {"Content-Type": "application/json"}


if __name__ == "__main__":
    serve(app, host="127.0.0.1", port=int(os.environ["UPSTREAM_PORT"]))
