// Waiting for a call's record without asking for a record that is not
// written yet (records are written in batches): the function's listing
// since the call began answers 200 with or without it.

import { enc, getJSON, getLines } from "./api.js";

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

const UNFINISHED = new Set(["queued", "running"]);

// Resolves to the full record once the listing shows it finished, polling
// with a growing pause; gives up (null) after `patience` ms.
export async function awaitRecord(fn, requestId, sinceMs, patience = 120000) {
  const end = Date.now() + patience;
  let pause = 100;
  while (Date.now() < end) {
    const page = await getJSON(`/v1/functions/${enc(fn)}/invocations`, { since: sinceMs, limit: 1000 });
    const hit = page.invocations.find((r) => r.request_id === requestId);
    if (hit && !UNFINISHED.has(hit.status)) return getJSON(`/v1/invocations/${enc(requestId)}`);
    await sleep(pause);
    pause = Math.min(pause * 2, 1000);
  }
  return null;
}

// A call's log lines, waiting a little for the runtime's closing REPORT
// line, which may be written after the answer.
export async function callLogs(fn, requestId, patience = 10000) {
  const end = Date.now() + patience;
  let lines = [];
  while (Date.now() < end) {
    lines = await getLines(`/v1/functions/${enc(fn)}/logs`, { request_id: requestId });
    if (lines.some((l) => /^(REPORT|END) /.test(l.message))) break;
    await sleep(200);
  }
  return lines;
}
