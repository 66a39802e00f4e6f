// The dashboard's shell: hash routes, the API key prompt, the 24 h numbers, the live stream.

import { apiKey, forgetConfig, setApiKey } from "./api.js";
import { connect, onEvent } from "./live.js";
import { fill, h } from "./dom.js";
import { renderStats } from "./views/stats.js";
import { renderJobs } from "./views/jobs.js";
import { renderJob } from "./views/job.js";
import { renderAssets } from "./views/assets.js";
import { renderAsset } from "./views/asset.js";
import { renderUpload } from "./views/upload.js";
import { renderWorkers } from "./views/workers.js";

const ROUTES = [
  [/^jobs$/, renderJobs, "jobs"],
  [/^jobs\/([0-9a-f-]{36})$/, renderJob, "jobs"],
  [/^assets$/, renderAssets, "assets"],
  [/^assets\/([0-9a-f-]{36})$/, renderAsset, "assets"],
  [/^upload$/, renderUpload, "upload"],
  [/^workers$/, renderWorkers, "workers"],
];

let cleanups = [];

/** What a view gets: its params and a way to register what must stop when it is left. */
function context(match, search) {
  return {
    id: match[1],
    query: new URLSearchParams(search),
    live: (fn) => cleanups.push(onEvent(fn)),
    every: (ms, fn) => {
      const timer = setInterval(fn, ms);
      cleanups.push(() => clearInterval(timer));
    },
    onLeave: (fn) => cleanups.push(fn),
    navigate,
    flash,
  };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

export function flash(message) {
  const el = document.getElementById("flash");
  el.textContent = message || "";
  el.hidden = !message;
}

function route() {
  for (const stop of cleanups) stop();
  cleanups = [];
  flash("");
  const raw = location.hash.replace(/^#\/?/, "") || "jobs";
  const [path, search = ""] = raw.split("?");
  const view = document.getElementById("view");
  for (const [pattern, render, nav] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === nav);
    }
    fill(view);
    if (!apiKey()) return askKey();
    render(view, context(match, search)).catch((exc) => {
      if (exc.status !== 401) flash(exc.message);
    });
    return;
  }
  fill(view, h("h1", {}, "Not found"), h("a", { href: "#/jobs" }, "Back to the jobs"));
}

function askKey(reason) {
  const dialog = document.getElementById("key-dialog");
  document.getElementById("key-reason").textContent =
    reason || "Enter an API key of this gateway (MPR_API_KEYS; make dev prints one).";
  const input = document.getElementById("key-input");
  input.value = "";
  if (!dialog.open) dialog.showModal();
  input.focus();
}

function keyEntered(event) {
  event.preventDefault();
  const key = document.getElementById("key-input").value;
  if (!key.trim()) return;
  setApiKey(key);
  forgetConfig();
  document.getElementById("key-dialog").close();
  start();
}

function start() {
  route();
  renderStats(document.getElementById("stats"));
  connect();
}

window.addEventListener("mpr:unauthorized", (event) => {
  askKey(`The gateway refused the key: ${event.detail}. Enter a valid one.`);
});
window.addEventListener("hashchange", route);
document.getElementById("key-form").addEventListener("submit", keyEntered);
document.getElementById("key-dialog").addEventListener("cancel", (event) => event.preventDefault());
document.getElementById("change-key").addEventListener("click", () => askKey());
if (apiKey()) start();
else askKey();
