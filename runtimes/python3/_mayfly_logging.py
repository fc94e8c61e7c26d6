"""Lambda's `logging` set-up for mayfly's Python runtime.

_mayfly_runtime loads this module the moment the function's code first
imports `logging` (see install_logging() there) and calls configure(): the
root logger gets the handler Lambda's runtime gives it, so that records
reach the function's log formatted as on Lambda:

    [INFO]\t2024-01-02T03:04:05.678Z\t<request id>\t<message>

or, with AWS_LAMBDA_LOG_FORMAT=JSON, one JSON object per record with
Lambda's fields (timestamp, level, message, logger, requestId, the error
fields of an exception, and whatever was passed with extra=).
AWS_LAMBDA_LOG_LEVEL sets the root logger's level. The handler, filter
and formatter are ordinary logging classes, so code written for Lambda
that replaces the formatter or reads %(aws_request_id)s works unchanged.
"""

import time

import _json

_TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
# A LogRecord's own attributes: everything else on a record came from
# extra= and is a field of its JSON object.
_RECORD_FIELDS = frozenset((
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
    "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
    "relativeCreated", "thread", "threadName", "processName", "process", "aws_request_id",
    "tenant_id", "_frame_type"))


def configure(logging, runtime):
    """Gives logging's root logger Lambda's handler, formatter and level.
    runtime is _mayfly_runtime: the request in flight, the settings, and
    the writer of log lines."""
    # Lambda's formatters write UTC, and so do the function's own.
    logging.Formatter.converter = time.gmtime

    class LambdaLoggerFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = runtime._request_id or ""
            record.tenant_id = runtime._tenant_id
            return True

    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            try:
                runtime.write_log(self.format(record))
            except Exception:
                self.handleError(record)

    handler = LambdaLoggerHandler()
    if runtime._log_json:
        handler.setFormatter(_json_formatter(logging, runtime))
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, _DATE_FORMAT))
    handler.addFilter(LambdaLoggerFilter())
    root = logging.getLogger()
    if runtime._log_level in logging._nameToLevel:
        root.setLevel(runtime._log_level)
    root.addHandler(handler)


def _not_serializable(obj):
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def _json_encoder():
    """json.dumps with ensure_ascii=False (a log keeps its text readable),
    from the C accelerator as _mayfly_runtime does, so `re` stays out."""
    try:
        markers = {}
        encoder = _json.make_encoder(markers, _not_serializable, _json.encode_basestring,
                                     None, ": ", ", ", False, False, True)

        def dumps(obj):
            markers.clear()
            return "".join(encoder(obj, 0))
        if dumps({"a": ["\u00e9\n", 1.5, None]}) == '{"a": ["\u00e9\\n", 1.5, null]}':
            return dumps
    except Exception:  # pragma: no cover - only on an unexpected CPython
        pass
    import json
    return json.JSONEncoder(ensure_ascii=False, default=_not_serializable).encode


def _json_formatter(logging, runtime):
    dumps = _json_encoder()

    class JsonFormatter(logging.Formatter):
        def format(self, record):
            # Lambda reports levels in steps of ten: a custom level 25 is INFO.
            record.levelno = min(50, max(0, record.levelno)) // 10 * 10
            record.levelname = logging.getLevelName(record.levelno)
            exc = record.exc_info
            doc = {
                "timestamp": time.strftime(_DATE_FORMAT, time.gmtime(record.created))
                + ".%03dZ" % record.msecs,
                "level": record.levelname,
                "message": record.getMessage(),
                "logger": record.name,
                "stackTrace": None,
                "errorType": None,
                "errorMessage": None,
                "requestId": getattr(record, "aws_request_id", None),
                "location": None,
            }
            tenant_id = getattr(record, "tenant_id", None)
            if tenant_id:
                doc["tenantId"] = tenant_id
            if exc:
                import traceback

                doc["stackTrace"] = traceback.format_tb(exc[2])
                doc["errorType"] = exc[0].__name__
                doc["errorMessage"] = str(exc[1])
                doc["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
            for key, value in record.__dict__.items():
                if key not in _RECORD_FIELDS and key not in doc:
                    doc[key] = value
            if runtime._slot is not None:
                # A worker of an instance serving many calls at once: the
                # platform looks for the request id in a line's first 256
                # bytes, so it goes before the message.
                doc = {"timestamp": doc.pop("timestamp"), "level": doc.pop("level"),
                       "requestId": doc.pop("requestId"), **doc}
            return dumps({k: v for k, v in doc.items() if v is not None}) + "\n"

    return JsonFormatter()
