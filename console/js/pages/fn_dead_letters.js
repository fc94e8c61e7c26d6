// Async events that ran out of retries or age, each with a redrive that
// queues it again as a new event.

import { enc, getJSON, request } from "../api.js";
import { errorBox, fmtTime, h, link, loading, pagedList, replace, table } from "../ui.js";

function eventText(b64) {
  try {
    const bytes = Uint8Array.from(atob(b64 || ""), (c) => c.charCodeAt(0));
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return text.length > 200 ? text.slice(0, 197) + "…" : text;
  } catch (_) {
    return "(binary, " + atob(b64 || "").length + " B)";
  }
}

export async function render(panel, fn) {
  const out = h("div", { id: "redrive-result", "aria-live": "polite" });
  const list = h("div", { id: "dead-letters" }, loading());
  replace(panel, h("h2", {}, "Dead letters"), out, list);
  async function load() {
    const answer = await getJSON(`/v1/functions/${enc(fn.name)}/dead-letters`, { limit: 1000 });
    const items = answer.dead_letters;
    if (!items.length) return replace(list, h("p", { class: "muted", id: "no-dead-letters" }, "No dead letters: every async event ran or is still queued."));
    replace(
      list,
      pagedList(items, 20, (page, box) =>
        replace(
          box,
          table(
            [
              { label: "Time", cell: (d) => fmtTime(d.time) },
              { label: "Request", cell: (d) => link("#/invocations/" + enc(d.request_id), d.request_id) },
              { label: "Attempts", class: "num", cell: (d) => d.attempts + (d.attempts === 1 ? " attempt" : " attempts") },
              { label: "Error", cell: (d) => (d.error_type || "–") + (d.error_message ? ": " + d.error_message : "") },
              { label: "Event", cell: (d) => h("code", {}, eventText(d.event_base64)) },
              {
                label: "",
                cell: (d) =>
                  h(
                    "button",
                    {
                      type: "button",
                      class: "redrive",
                      "data-id": String(d.id),
                      onclick: async (ev) => {
                        ev.target.disabled = true;
                        try {
                          const resp = await request("POST", `/v1/functions/${enc(fn.name)}/dead-letters/${enc(String(d.id))}/redrive`);
                          const { request_id } = await resp.json();
                          replace(out, h("p", { class: "ok" }, "Queued again as ", link("#/invocations/" + enc(request_id), request_id, { class: "redriven" }), "."));
                          await load();
                        } catch (e) {
                          ev.target.disabled = false;
                          replace(out, errorBox(e));
                        }
                      },
                    },
                    "Redrive",
                  ),
              },
            ],
            page,
            { class: "dead-letters" },
          ),
        ),
      ),
    );
  }
  await load().catch((e) => replace(list, errorBox(e)));
  return null;
}
