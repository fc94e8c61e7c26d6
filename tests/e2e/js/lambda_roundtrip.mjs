// A round trip through mayfly's Lambda API with the AWS SDK for JavaScript
// v3 (@aws-sdk/client-lambda), driven by tests/e2e/test_lambda_api.py:
// create a Node.js function from a zip, invoke it (a result with its tail
// log, a function error, an asynchronous event), list functions page by
// page, delete it, and see it gone; a client with a wrong secret is turned
// away.
//
// Input, in the environment: MAYFLY_ENDPOINT (the server's URL),
// FUNCTION_NAME, ZIP_PATH, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION. Output: one JSON document on stdout with what each step got
// ({"ok": ...} or {"error": {"name", "status", "message"}}); the test asserts
// on it. The exit code is 0 unless the script itself broke.

import { readFileSync } from "node:fs";
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  InvokeCommand,
  LambdaClient,
  ListFunctionsCommand,
  paginateListFunctions,
} from "@aws-sdk/client-lambda";

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`lambda_roundtrip.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const endpoint = env("MAYFLY_ENDPOINT");
const name = env("FUNCTION_NAME");
const zip = readFileSync(env("ZIP_PATH"));
const region = env("AWS_REGION");

const client = (secretAccessKey) =>
  new LambdaClient({
    endpoint,
    region,
    credentials: { accessKeyId: env("AWS_ACCESS_KEY_ID"), secretAccessKey },
    maxAttempts: 1, // no retries: every answer is the server's first
  });

const lambda = client(env("AWS_SECRET_ACCESS_KEY"));
const report = {};

async function step(label, fn) {
  try {
    report[label] = { ok: await fn() };
  } catch (e) {
    report[label] = {
      error: {
        name: e.name,
        status: e.$metadata?.httpStatusCode ?? null,
        message: String(e.message ?? e),
      },
    };
  }
}

const text = (bytes) => (bytes ? Buffer.from(bytes).toString("utf8") : null);
const fromBase64 = (s) => (s ? Buffer.from(s, "base64").toString("utf8") : null);

async function invoke(payload, extra = {}) {
  const r = await lambda.send(
    new InvokeCommand({
      FunctionName: name,
      Payload: new TextEncoder().encode(JSON.stringify(payload)),
      ...extra,
    }),
  );
  return {
    status: r.StatusCode,
    functionError: r.FunctionError ?? null,
    executedVersion: r.ExecutedVersion ?? null,
    payload: text(r.Payload),
    log: fromBase64(r.LogResult),
    requestId: r.$metadata.requestId ?? null,
  };
}

await step("create", async () => {
  const r = await lambda.send(
    new CreateFunctionCommand({
      FunctionName: name,
      Runtime: "nodejs20.x",
      Handler: "index.handler",
      Role: "arn:aws:iam::000000000000:role/lambda-role",
      Code: { ZipFile: zip },
      MemorySize: 256,
      Timeout: 10,
      Environment: { Variables: { GREETING: "hello from the JS SDK" } },
    }),
  );
  const { $metadata, ...conf } = r;
  return { status: $metadata.httpStatusCode, conf };
});

await step("get", async () => {
  const r = await lambda.send(new GetFunctionCommand({ FunctionName: name }));
  return { status: r.$metadata.httpStatusCode, conf: r.Configuration, code: r.Code ?? null };
});

await step("invoke", () => invoke({ marker: "js-sync" }, { LogType: "Tail" }));
await step("invokeError", () => invoke({ fail: "js" }));
await step("invokeEvent", () => invoke({ marker: "js-event" }, { InvocationType: "Event" }));

await step("list", async () => {
  // One function a page, so Marker and NextMarker have to work.
  const names = [];
  let pages = 0;
  for await (const page of paginateListFunctions({ client: lambda, pageSize: 1 }, {})) {
    pages += 1;
    names.push(...(page.Functions ?? []).map((f) => f.FunctionName));
    if (pages > 1000) throw new Error("more than 1000 pages: NextMarker never ends");
  }
  const whole = await lambda.send(new ListFunctionsCommand({}));
  return { pages, names, wholeNames: (whole.Functions ?? []).map((f) => f.FunctionName) };
});

await step("delete", async () => {
  const r = await lambda.send(new DeleteFunctionCommand({ FunctionName: name }));
  return { status: r.$metadata.httpStatusCode };
});

await step("getAfterDelete", async () => {
  const r = await lambda.send(new GetFunctionCommand({ FunctionName: name }));
  return { status: r.$metadata.httpStatusCode, conf: r.Configuration };
});

await step("wrongSecret", async () => {
  const r = await client("not-the-secret").send(new ListFunctionsCommand({}));
  return { status: r.$metadata.httpStatusCode };
});

process.stdout.write(JSON.stringify(report) + "\n");
