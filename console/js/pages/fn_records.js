// A function's records, newest first, filtered as the API allows (status,
// cold or warm, error type, least duration, trigger, a time range), a page
// at a time with the API's cursor.

import { enc, getJSON } from "../api.js";
import { CursorPager, errorBox, fmtMs, fmtTime, h, link, replace, statusBadge, table } from "../ui.js";

const PAGE = 20;

function field(id, label, input) {
  return h("label", { for: id, class: "field" }, h("span", {}, label), input);
}

export function render(panel, fn) {
  const status = h("select", { id: "f-status", name: "status" }, ["", "success", "error", "timeout", "oom", "throttled", "queued", "running"].map((s) => h("option", { value: s }, s || "any")));
  const cold = h("select", { id: "f-cold", name: "cold" }, h("option", { value: "" }, "any"), h("option", { value: "1" }, "cold"), h("option", { value: "0" }, "warm"));
  const errorType = h("input", { id: "f-error-type", name: "error_type", type: "text", placeholder: "e.g. KeyError" });
  const minDuration = h("input", { id: "f-min-duration", name: "min_duration_ms", type: "number", min: "0", placeholder: "ms" });
  const trigger = h("input", { id: "f-trigger", name: "trigger", type: "text", placeholder: "invoke, schedule, topic…" });
  const since = h("input", { id: "f-since", name: "since", type: "datetime-local" });
  const until = h("input", { id: "f-until", name: "until", type: "datetime-local" });
  const list = h("div", { id: "records" });
  const when = (input) => (input.value ? new Date(input.value).getTime() : "");
  const pager = new CursorPager(
    async (cursor) => {
      const page = await getJSON(`/v1/functions/${enc(fn.name)}/invocations`, {
        limit: PAGE,
        cursor,
        status: status.value,
        cold: cold.value,
        error_type: errorType.value.trim(),
        min_duration_ms: minDuration.value,
        trigger: trigger.value.trim(),
        since: when(since),
        until: when(until),
      });
      return { items: page.invocations, next: page.next };
    },
    (items) =>
      replace(
        list,
        table(
          [
            { label: "Start", cell: (r) => link("#/invocations/" + enc(r.request_id), fmtTime(r.start), { class: "record-link", "data-request-id": r.request_id }) },
            { label: "Status", cell: (r) => statusBadge(r.status) },
            { label: "Duration", class: "num", cell: (r) => fmtMs(r.duration_ms) },
            { label: "Start kind", cell: (r) => (r.cold_start ? "cold" : "warm") },
            { label: "Trigger", cell: (r) => r.trigger || "–" },
            { label: "Error", cell: (r) => (r.error_type ? r.error_type + ": " + (r.error_message || "") : "–") },
            { label: "Request id", cell: (r) => h("code", {}, r.request_id) },
          ],
          items,
          { empty: "No records match.", class: "records" },
        ),
      ),
  );
  const out = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "filters card",
      onsubmit: async (ev) => {
        ev.preventDefault();
        pager.cursors = [null];
        try {
          replace(out);
          await pager.show(0);
        } catch (e) {
          replace(out, errorBox(e));
        }
      },
    },
    field("f-status", "Status", status),
    field("f-cold", "Start", cold),
    field("f-error-type", "Error type", errorType),
    field("f-min-duration", "Least duration (ms)", minDuration),
    field("f-trigger", "Trigger", trigger),
    field("f-since", "Since", since),
    field("f-until", "Until", until),
    h("button", { type: "submit", id: "filter-apply" }, "Apply"),
  );
  replace(panel, form, out, list, pager.nav);
  pager.show(0).catch((e) => replace(out, errorBox(e)));
  return null;
}
