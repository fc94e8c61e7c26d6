const VERSION = "v1";

class OrderRefused extends Error {
  constructor(message) {
    super(message);
    this.name = "OrderRefused";
  }
}

exports.handler = async (event, context) => {
  console.log("handled " + JSON.stringify({ marker: event.marker, version: VERSION,
                                            request_id: context.awsRequestId }));
  if (event.fail) {
    throw new OrderRefused("refused: " + event.fail);
  }
  return {
    version: VERSION,
    served_by: "aws-lambda-ric",
    event,
    function_name: context.functionName,
    request_id: context.awsRequestId,
    remaining_ms: context.getRemainingTimeInMillis(),
  };
};
