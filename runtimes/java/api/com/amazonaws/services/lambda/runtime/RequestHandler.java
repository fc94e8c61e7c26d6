package com.amazonaws.services.lambda.runtime;

/**
 * A handler whose event is mapped from JSON to I and whose result is mapped
 * from O to JSON.
 *
 * @param <I> the event's type
 * @param <O> the result's type
 */
public interface RequestHandler<I, O> {
    O handleRequest(I input, Context context);
}
