package com.amazonaws.services.lambda.runtime;

/**
 * What a handler learns about the call it serves and the function it is
 * part of. The platform's runtime passes one to every call.
 */
public interface Context {
    /** The call's request id, as the platform's records and logs show it. */
    String getAwsRequestId();

    /** The function's log group: /aws/lambda/NAME. */
    String getLogGroupName();

    /** The log stream of this instance of the function. */
    String getLogStreamName();

    /** The function's name. */
    String getFunctionName();

    /** The function's version: $LATEST. */
    String getFunctionVersion();

    /** The ARN the caller invoked. */
    String getInvokedFunctionArn();

    /** The caller's Cognito identity, when the call came with one; else null. */
    CognitoIdentity getIdentity();

    /** The client context a mobile caller sent, when there is one; else null. */
    ClientContext getClientContext();

    /** Milliseconds left until the call's deadline (0 once it has passed). */
    int getRemainingTimeInMillis();

    /** The memory the function is given, in MB. */
    int getMemoryLimitInMB();

    /** A logger whose lines go to the function's log, tagged with the call. */
    LambdaLogger getLogger();
}
