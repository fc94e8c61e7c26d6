// What starts the function besides an invoke: its URL, the schedules that
// target it and the topics it is subscribed to.

import { ApiError, enc, getJSON } from "../api.js";
import { errorBox, facts, fmtTime, h, loading, replace, table } from "../ui.js";

const TOPICS_LOOKED_AT = 50;

// The function's document says whether it has a URL (its "url", null
// without), so a function without one costs no request that fails: the
// browser logs every failed fetch as an error.
async function urlCard(fn) {
  const none = () => h("p", { class: "muted", id: "no-url" }, "No URL. `mayfly url set " + fn.name + " --auth none|key` gives it one.");
  if (!fn.url) return none();
  try {
    const u = await getJSON(`/v1/functions/${enc(fn.name)}/url`);
    return facts([
      ["URL", h("a", { href: u.url, id: "function-url" }, u.url)],
      ["Auth", u.auth],
      ["Invoke mode", u.invoke_mode],
      ["CORS", u.cors ? JSON.stringify(u.cors) : "none"],
      ["Created", fmtTime(u.created)],
    ]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return none(); // removed since the page loaded
    return errorBox(e);
  }
}

async function schedulesCard(fn) {
  const all = (await getJSON("/v1/schedules")).schedules.filter((s) => s.function === fn.name);
  return table(
    [
      { label: "Schedule", cell: (s) => s.name },
      { label: "Expression", cell: (s) => h("code", {}, s.expression) },
      { label: "Zone", cell: (s) => s.timezone },
      { label: "Enabled", cell: (s) => (s.enabled ? "yes" : "no") },
      { label: "Next", cell: (s) => (s.next_fires && s.next_fires.length ? fmtTime(s.next_fires[0]) : "–") },
    ],
    all,
    { empty: "No schedule targets this function." },
  );
}

async function topicsCard(fn) {
  const topics = (await getJSON("/v1/topics")).topics.slice(0, TOPICS_LOOKED_AT);
  const full = await Promise.all(topics.map((t) => getJSON("/v1/topics/" + enc(t.name))));
  const subs = [];
  for (const t of full) for (const s of t.subscriptions || []) if (s.function === fn.name) subs.push({ topic: t.name, ...s });
  return table(
    [
      { label: "Topic", cell: (s) => s.topic },
      { label: "Filter", cell: (s) => (s.filter ? h("code", {}, JSON.stringify(s.filter)) : "none") },
      { label: "Since", cell: (s) => fmtTime(s.created) },
    ],
    subs,
    { empty: "Not subscribed to any topic." },
  );
}

export async function render(panel, fn) {
  const cards = [
    ["Function URL", urlCard],
    ["Schedules", schedulesCard],
    ["Topics", topicsCard],
  ].map(([title, make]) => {
    const body = h("div", {}, loading());
    make(fn).then((el) => replace(body, el), (e) => replace(body, errorBox(e)));
    return h("section", { class: "card" }, h("h2", {}, title), body);
  });
  replace(panel, cards);
  return null;
}
