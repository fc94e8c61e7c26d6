"""mayfly's Python runtime entry point.

mayfly starts it as the sandbox's first process:

    /usr/bin/python3 /var/runtime/python3/bootstrap.py

with the Lambda environment (_HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_*).  The
work happens in _mayfly_runtime, a module so that its bytecode can be
precompiled (see that module's docstring); this file stays tiny because the
script Python is started with is compiled afresh every time.
"""
import os

import _mayfly_runtime

# Zygote mode: started ahead, before its function was known (see become()).
if "MAYFLY_ZYGOTE_FD" in os.environ:
    _mayfly_runtime.become(int(os.environ["MAYFLY_ZYGOTE_FD"]))
_mayfly_runtime.run()
