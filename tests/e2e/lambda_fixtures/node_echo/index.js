const VERSION = "v1";

exports.handler = async (event, context) => {
  console.log("handled " + JSON.stringify({ marker: event.marker, version: VERSION,
                                            request_id: context.awsRequestId }));
  if (event.fail) {
    throw new TypeError("refused: " + event.fail);
  }
  return {
    version: VERSION,
    event,
    greeting: process.env.GREETING,
    function_name: context.functionName,
    invoked_function_arn: context.invokedFunctionArn,
    memory_limit_in_mb: String(context.memoryLimitInMB),
    request_id: context.awsRequestId,
    remaining_ms: context.getRemainingTimeInMillis(),
  };
};
