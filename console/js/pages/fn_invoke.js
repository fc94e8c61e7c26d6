// The invoke form: an event editor that remembers the last events sent to
// this function (localStorage), sync or async; shows the answer, the call's
// log lines and its record.

import { enc, request } from "../api.js";
import { awaitRecord, callLogs } from "../records.js";
import { errorBox, facts, fmtMs, h, link, loading, logLines, pretty, replace, statusBadge } from "../ui.js";
import { recordSummary } from "./record.js";

const KEEP = 10;

function historyKey(name) {
  return "mayfly.events." + name;
}

function history(name) {
  try {
    return JSON.parse(localStorage.getItem(historyKey(name)) || "[]");
  } catch (_) {
    return [];
  }
}

function remember(name, text) {
  const list = [text, ...history(name).filter((t) => t !== text)].slice(0, KEEP);
  localStorage.setItem(historyKey(name), JSON.stringify(list));
}

function oneLine(text) {
  const s = text.replace(/\s+/g, " ");
  return s.length > 60 ? s.slice(0, 57) + "…" : s;
}

export function render(panel, fn) {
  const past = history(fn.name);
  const editor = h("textarea", { id: "event", name: "event", rows: 8, spellcheck: "false", class: "code" }, past[0] || "{}");
  const recent = h(
    "select",
    { id: "recent-events", "aria-label": "recent events", onchange: () => { if (recent.value !== "") editor.value = past[Number(recent.value)]; } },
    h("option", { value: "" }, past.length ? "Recent events…" : "No recent events"),
    past.map((t, i) => h("option", { value: String(i) }, oneLine(t))),
  );
  const out = h("div", { id: "invoke-result", "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "card invoke",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const text = editor.value;
        try {
          JSON.parse(text);
        } catch (e) {
          replace(out, errorBox("The event is not JSON: " + e.message));
          return;
        }
        remember(fn.name, text);
        const asyncCall = form.querySelector("input[name=mode]:checked").value === "async";
        submit.disabled = true;
        try {
          await run(fn, text, asyncCall, out);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "row" }, h("label", { for: "event" }, "Event (JSON)"), recent),
    editor,
    h(
      "fieldset",
      { class: "row" },
      h("legend", {}, "Call"),
      h("label", {}, h("input", { type: "radio", name: "mode", value: "sync", checked: true, id: "mode-sync" }), " synchronously"),
      h("label", {}, h("input", { type: "radio", name: "mode", value: "async", id: "mode-async" }), " asynchronously (queued)"),
    ),
  );
  const submit = h("button", { type: "submit", class: "primary", id: "invoke-submit" }, "Invoke");
  form.appendChild(submit);
  replace(panel, form, out);
  return null;
}

async function run(fn, text, asyncCall, out) {
  replace(out, loading("Calling " + fn.name + "…"));
  const since = Date.now() - 1000;
  let resp;
  try {
    resp = await request("POST", `/v1/functions/${enc(fn.name)}/invoke`, {
      body: text,
      extra: asyncCall ? { "X-Mayfly-Invocation-Type": "Event", "Content-Type": "application/json" } : { "Content-Type": "application/json" },
    });
  } catch (e) {
    replace(out, errorBox(e));
    return;
  }
  let id;
  const answer = h("section", { class: "card", id: "invoke-answer" });
  if (asyncCall) {
    id = (await resp.json()).request_id;
    replace(answer, h("h2", {}, "Queued"), facts([["Request id", h("code", { class: "request-id" }, id)]]));
  } else {
    id = resp.headers.get("X-Mayfly-Request-Id");
    const failed = resp.headers.get("X-Mayfly-Function-Error");
    const body = await resp.text();
    let shown = body;
    try {
      shown = pretty(JSON.parse(body));
    } catch (_) {
      /* not JSON: shown as it came */
    }
    replace(
      answer,
      h("h2", {}, failed ? "Function error" : "Result"),
      facts([
        ["Request id", h("code", { class: "request-id" }, id)],
        ["Duration", fmtMs(Number(resp.headers.get("X-Mayfly-Duration-Ms")))],
        ["Billed", resp.headers.get("X-Mayfly-Billed-Ms") + " ms"],
        ["Start", resp.headers.get("X-Mayfly-Cold-Start") === "1" ? "cold" : "warm"],
      ]),
      h("pre", { class: failed ? "result error-result" : "result", id: "invoke-body" }, shown),
    );
  }
  const logsBox = h("section", { class: "card", id: "invoke-logs" }, h("h2", {}, "Log lines"), loading());
  const recordBox = h("section", { class: "card", id: "invoke-record" }, h("h2", {}, "Record"), loading(asyncCall ? "Waiting for the event to run…" : "Waiting for the record…"));
  replace(out, answer, logsBox, recordBox);
  const record = await awaitRecord(fn.name, id, since).catch((e) => e);
  if (record instanceof Error) replace(recordBox, h("h2", {}, "Record"), errorBox(record));
  else if (!record) replace(recordBox, h("h2", {}, "Record"), h("p", { class: "muted" }, "No record yet; see the Records tab."));
  else
    replace(
      recordBox,
      h("h2", {}, "Record ", statusBadge(record.status)),
      recordSummary(record),
      link("#/invocations/" + enc(id), "Open the record", { class: "open-record" }),
    );
  const lines = await callLogs(fn.name, id).catch((e) => e);
  replace(logsBox, h("h2", {}, "Log lines"), lines instanceof Error ? errorBox(lines) : logLines(lines));
}
