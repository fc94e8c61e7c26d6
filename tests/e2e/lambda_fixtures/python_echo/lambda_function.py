import json
import os
import time

VERSION = "v1"


def lambda_handler(event, context):
    # One log line the tests look for (in the Tail log and the /v1 logs).
    print("handled " + json.dumps({"marker": event.get("marker"), "version": VERSION,
                                   "request_id": context.aws_request_id}))
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("refused: " + str(event["fail"]))
    return {
        "version": VERSION,
        "event": event,
        "greeting": os.environ.get("GREETING"),
        "region": os.environ.get("AWS_REGION"),
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": str(context.memory_limit_in_mb),
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
