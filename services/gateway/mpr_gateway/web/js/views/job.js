// One job: status and live progress, timeline, FFmpeg log tail, outputs with a player,
// cancel and retry.

import { api } from "../api.js";
import { badge, fill, h, kv } from "../dom.js";
import { bytes, clock, time } from "../format.js";
import { TERMINAL, isStale, jobAfter, progressCell, withEvent } from "./jobrow.js";
import { player } from "./player.js";

const LABELS = {
  "job.queued": "queued", "job.started": "started", "job.progress": "first progress",
  "job.completed": "completed", "job.failed": "failed", "job.cancelled": "cancelled",
};

export async function renderJob(view, ctx) {
  let job = await api(`/api/jobs/${ctx.id}`);
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const seen = new Set();
  const summary = h("div");
  const outputs = h("div", { id: "outputs" });
  const log = h("div", { id: "log" });
  const progress = h("div", { id: "job-progress" });

  function mark(type, at, detail) {
    if (seen.has(type) && type !== "job.queued") return;
    seen.add(type);
    timeline.append(h("li", { dataset: { event: type } },
      h("strong", {}, LABELS[type] || type), " ", h("span", { class: "muted" }, time(at)),
      detail ? h("div", { class: "muted" }, detail) : null));
  }

  function action(label, path, cls) {
    const button = h("button", { type: "button", class: cls, id: `job-${label.toLowerCase()}` }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const next = await api(path, { method: "POST" });
        if (next.id !== job.id) ctx.navigate(`#/jobs/${next.id}`);
        else show(next);
      } catch (exc) {
        if (exc.status !== 401) ctx.flash(exc.message);
        button.disabled = false;
      }
    });
    return button;
  }

  function showProgress() {
    fill(progress, progressCell(job));
    const current = summary.querySelector("h1 .badge");
    if (current && current.textContent !== job.status) current.replaceWith(badge(job.status));
  }

  let shown = null;
  function show(next) {
    if (isStale(next, shown)) return;
    job = shown = next;
    const actions = h("div", { class: "toolbar" });
    if (!TERMINAL.has(job.status)) actions.append(action("Cancel", `/api/jobs/${job.id}/cancel`, "danger"));
    if (job.status === "failed" || job.status === "cancelled") {
      actions.append(action("Retry", `/api/jobs/${job.id}/retry`, "primary"));
    }
    fill(summary,
      h("h1", {}, "Job ", badge(job.status), " ", h("span", { class: "mono muted" }, job.id)),
      actions,
      h("div", { class: "grid" },
        h("div", { class: "card" }, kv([
          ["Kind", job.kind], ["Preset", job.preset],
          ["Source", job.asset_id ? h("a", { href: `#/assets/${job.asset_id}` }, job.source_key) : job.source_key],
          ["Output", `${job.output_bucket}/${job.output_key}`], ["Priority", String(job.priority)],
          ["Attempt", String(job.attempt)], ["Worker", job.worker],
          ["Created", time(job.created_at)], ["Started", time(job.started_at)],
          ["Finished", time(job.finished_at)],
          ["Elapsed", job.started_at && job.finished_at
            ? clock((Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000) : null],
          ["Error", job.error ? h("span", { class: "error" }, job.error) : null],
        ])),
        h("div", { class: "card" }, h("h2", {}, "Progress"), progress, h("h2", {}, "Timeline"), timeline)));
    showProgress();
    mark("job.queued", job.created_at);
    if (job.started_at) mark("job.started", job.started_at, job.worker ? `on ${job.worker}` : null);
    if (TERMINAL.has(job.status)) mark(`job.${job.status}`, job.finished_at || job.updated_at, job.error);
    const lines = job.log_tail?.length ? job.log_tail : job.error_lines || [];
    fill(log, h("h2", {}, "FFmpeg log (tail)"),
      lines.length ? h("pre", { class: "log" }, lines.join("\n")) : h("p", { class: "muted" }, "No log lines yet."));
    fill(outputs, h("h2", {}, "Outputs"), outputList(job));
  }

  fill(view, summary, outputs, log);
  show(job);

  ctx.live((type, data) => {
    if (data.job_id !== job.id || !type.startsWith("job.")) return;
    if (type === "job.progress") {
      mark(type, data.occurred_at, null);
      job = withEvent(job, type, data);
      if (!TERMINAL.has(job.status)) showProgress();
      return;
    }
    mark(type, data.occurred_at, data.reason || data.worker || null);
    jobAfter(api, job.id, type).then(show, (exc) => exc.status !== 401 && ctx.flash(exc.message));
  });
}

function outputList(job) {
  if (!job.outputs.length) return h("p", { class: "muted" }, "No outputs yet.");
  const rows = job.outputs.map((o) => h("tr", {},
    h("td", { class: "mono" }, o.key),
    h("td", {}, bytes(o.size_bytes)),
    h("td", {}, probeText(o.probe)),
    h("td", {}, h("a", { href: o.download_url, download: o.key.split("/").pop(), rel: "noreferrer" }, "Download"))));
  return h("div", {},
    player(job.outputs),
    h("table", { id: "output-table" },
      h("thead", {}, h("tr", {}, ["Key", "Size", "Media", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
}

export function probeText(probe) {
  if (!probe) return "—";
  const parts = [];
  const streams = probe.streams || [];
  const video = streams.find((s) => (s.type || s.codec_type) === "video");
  const audio = streams.find((s) => (s.type || s.codec_type) === "audio");
  if (video) parts.push(`${video.codec || video.codec_name || "video"} ${video.width ?? "?"}×${video.height ?? "?"}`);
  if (audio) parts.push(`${audio.codec || audio.codec_name || "audio"}`);
  const duration = probe.duration ?? probe.format?.duration;
  if (duration) parts.push(clock(Number(duration)));
  return parts.join(" · ") || "—";
}
