// Does nothing: the benchmarks use it to measure the platform's own overhead.
'use strict';

exports.handler = async () => ({});
