"""A Lambda function in Python: greets the caller by name."""


def handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"hello-python: greeting {name} (request {context.aws_request_id})")
    return {"message": f"hello, {name}!", "request_id": context.aws_request_id}
