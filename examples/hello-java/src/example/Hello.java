package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;

/** A Lambda function in Java: greets the caller by name. */
public class Hello implements RequestHandler<Hello.Request, Hello.Response> {
    /** The event: {"name": "…"}. */
    public static class Request {
        private String name;

        public String getName() {
            return name;
        }

        public void setName(String name) {
            this.name = name;
        }
    }

    /** The result: {"message": "hello, …!", "requestId": "…"}. */
    public static class Response {
        public String message;
        public String requestId;
    }

    @Override
    public Response handleRequest(Request request, Context context) {
        String name = request == null || request.getName() == null ? "world" : request.getName();
        context.getLogger().log("hello-java: greeting " + name);
        Response r = new Response();
        r.message = "hello, " + name + "!";
        r.requestId = context.getAwsRequestId();
        return r;
    }

    /** Run by hand (java -cp hello.jar example.Hello): the baseline of the bench's cold row. */
    public static void main(String[] args) {
        System.out.println("{\"message\":\"hello, world!\"}");
    }
}
