package com.amazonaws.services.lambda.runtime;

/** The application a mobile caller runs, as its client context says. */
public interface Client {
    String getInstallationId();

    String getAppTitle();

    String getAppVersionName();

    String getAppVersionCode();

    String getAppPackageName();
}
