"""mayfly's Python runtime entry point.

mayfly starts it as the sandbox's first process:

    /usr/bin/python3 /var/runtime/python3/bootstrap.py

with the Lambda environment (_HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_*).  The
work happens in _mayfly_runtime, a module so that its bytecode can be
precompiled (see that module's docstring); this file stays tiny because the
script Python is started with is compiled afresh every time.
"""
import _mayfly_runtime

_mayfly_runtime.run()
