// The numbers a pipeline operator wants: done and failed in 24 h, median speed, bytes.

import { api } from "../api.js";
import { fill, h } from "../dom.js";
import { bytes, number } from "../format.js";
import { onEvent } from "../live.js";

let timer = null;
let unsubscribe = null;
let pending = null;

function stat(label, value, name) {
  return h("div", { class: "stat", dataset: { stat: name } },
    h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}

async function refresh(el) {
  try {
    const s = await api("/api/stats");
    const hours = s.window_hours ?? 24;
    fill(el,
      stat(`completed (${hours} h)`, s.completed, "completed"),
      stat(`failed (${hours} h)`, s.failed, "failed"),
      stat(`cancelled (${hours} h)`, s.cancelled, "cancelled"),
      stat("median speed", s.median_speed === null ? "—" : `${number(s.median_speed)}×`, "speed"),
      stat("bytes in", bytes(s.bytes_in), "bytes_in"),
      stat("bytes out", bytes(s.bytes_out), "bytes_out"));
  } catch (exc) {
    if (exc.status !== 401) fill(el, h("div", { class: "stat muted" }, `stats: ${exc.message}`));
  }
}

export function renderStats(el) {
  clearInterval(timer);
  if (unsubscribe) unsubscribe();
  refresh(el);
  timer = setInterval(() => refresh(el), 30000);
  unsubscribe = onEvent((type) => {
    if (!["job.completed", "job.failed", "job.cancelled"].includes(type) || pending) return;
    pending = setTimeout(() => { pending = null; refresh(el); }, 1000);
  });
}
