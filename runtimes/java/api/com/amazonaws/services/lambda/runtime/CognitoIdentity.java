package com.amazonaws.services.lambda.runtime;

/** The Amazon Cognito identity a call was made with. */
public interface CognitoIdentity {
    String getIdentityId();

    String getIdentityPoolId();
}
