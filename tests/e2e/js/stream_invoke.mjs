// InvokeWithResponseStream with the AWS SDK for JavaScript v3
// (@aws-sdk/client-lambda), driven by tests/e2e/test_streaming.py: invokes
// FUNCTION_NAME with PAYLOAD and reads the event stream as it comes. When
// GATE_URL is set, the first PayloadChunk makes it PUT that URL (a key the
// function waits for before it writes the rest), so the rest can only
// arrive after the first chunk did.
//
// Input, in the environment: MAYFLY_ENDPOINT, FUNCTION_NAME, PAYLOAD,
// GATE_URL (optional), LOG_TYPE (optional), AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION. Output: one JSON document on stdout:
// {"ok": {status, executedVersion, contentType, chunks: [text...],
// firstBeforeGate, complete}} or {"error": {name, status, message}}.

import { InvokeWithResponseStreamCommand, LambdaClient } from "@aws-sdk/client-lambda";

const env = (name) => process.env[name];

const lambda = new LambdaClient({
  endpoint: env("MAYFLY_ENDPOINT"),
  region: env("AWS_REGION"),
  credentials: {
    accessKeyId: env("AWS_ACCESS_KEY_ID"),
    secretAccessKey: env("AWS_SECRET_ACCESS_KEY"),
  },
  maxAttempts: 1,
});

try {
  const res = await lambda.send(
    new InvokeWithResponseStreamCommand({
      FunctionName: env("FUNCTION_NAME"),
      Payload: Buffer.from(env("PAYLOAD") || "{}"),
      LogType: env("LOG_TYPE") || undefined,
    }),
  );
  const chunks = [];
  let complete = null;
  let firstBeforeGate = null;
  for await (const ev of res.EventStream) {
    if (ev.PayloadChunk) {
      const text = Buffer.from(ev.PayloadChunk.Payload).toString("utf8");
      chunks.push(text);
      if (chunks.length === 1 && env("GATE_URL")) {
        firstBeforeGate = text;
        const r = await fetch(env("GATE_URL"), { method: "PUT", body: "1" });
        if (r.status !== 200) throw new Error(`gate: HTTP ${r.status}`);
      }
    }
    if (ev.InvokeComplete) complete = ev.InvokeComplete;
  }
  console.log(
    JSON.stringify({
      ok: {
        status: res.StatusCode,
        executedVersion: res.ExecutedVersion,
        contentType: res.ResponseStreamContentType,
        chunks,
        firstBeforeGate,
        complete,
      },
    }),
  );
} catch (e) {
  console.log(
    JSON.stringify({
      error: { name: e.name, status: e.$metadata?.httpStatusCode ?? null, message: String(e.message ?? e) },
    }),
  );
}
