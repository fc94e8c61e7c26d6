"""Does nothing: the benchmarks use it to measure the platform's own overhead."""


def handler(event, context):
    return {}
