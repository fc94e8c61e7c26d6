// A Lambda function in Node.js: greets the caller by name.
'use strict';

exports.handler = async (event, context) => {
  const name = (event && event.name) || 'world';
  console.log(`hello-node: greeting ${name} (request ${context.awsRequestId})`);
  return { message: `hello, ${name}!`, request_id: context.awsRequestId };
};
