package com.amazonaws.services.lambda.runtime;

import java.util.Map;

/** What a mobile caller sent about itself with the call. */
public interface ClientContext {
    Client getClient();

    Map<String, String> getCustom();

    Map<String, String> getEnvironment();
}
