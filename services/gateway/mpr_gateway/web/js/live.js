// One Server-Sent Events stream per page, from the notifier (GET /api/config events_url),
// shared by every view. EventSource cannot send headers, so the key goes in ?api_key=.

import { api, apiKey, config } from "./api.js";

const TYPES = [
  "job.queued", "job.started", "job.progress", "job.completed", "job.failed", "job.cancelled",
  "asset.registered", "asset.probed", "asset.updated", "asset.removed",
  "worker.heartbeat", "worker.stopped",
];
const listeners = new Set();
let source = null;
let retryTimer = null;

function indicator(on, text) {
  const el = document.getElementById("live");
  if (!el) return;
  el.textContent = text;
  el.classList.toggle("on", on);
}

/** Call ``fn(eventName, data)`` for every event; returns the function that stops it. */
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function dispatch(event) {
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return;
  }
  for (const fn of listeners) {
    try {
      fn(event.type, data);
    } catch (exc) {
      console.error("live listener failed", exc);
    }
  }
}

export async function connect() {
  disconnect();
  if (!apiKey()) return;
  let eventsUrl;
  try {
    eventsUrl = (await config()).events_url || "";
  } catch {
    indicator(false, "offline");
    return;
  }
  const url = `${eventsUrl.replace(/\/$/, "")}/api/events?api_key=${encodeURIComponent(apiKey())}`;
  source = new EventSource(url);
  source.onopen = () => indicator(true, "live");
  for (const type of TYPES) source.addEventListener(type, dispatch);
  source.onerror = () => {
    indicator(false, "reconnecting");
    if (source && source.readyState === EventSource.CLOSED) {
      // A refused stream (401, or the notifier down) is not retried by the browser: check the
      // key against the gateway (a 401 there asks for a new one), then try again.
      disconnect();
      api("/api/config").then(
        () => { retryTimer = setTimeout(connect, 3000); },
        () => {},
      );
    }
  };
}

export function disconnect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  indicator(false, "offline");
}
