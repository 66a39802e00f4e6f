// A job's progress cell, shared by the jobs table and the job page.

import { h } from "../dom.js";
import { progressText } from "../format.js";

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/** Progress bar and "42% · 120 fps · ETA 0:05"; fps and ETA only while it runs. */
export function progressCell(job) {
  const percent = job.status === "completed" ? 100 : job.progress ?? 0;
  const running = job.status === "running";
  const text = running ? progressText(job) : job.status === "completed" ? "100%" : `${Math.floor(percent)}%`;
  const fill = h("div", { class: "fill" });
  fill.style.width = `${Math.min(100, Math.max(0, percent))}%`;
  return h("div", { class: "progress" }, h("div", { class: "bar" }, fill), h("span", { class: "text" }, text));
}

/** A job object with a JobProgress or JobStarted event applied. */
export function withEvent(job, type, data) {
  if (type === "job.progress") {
    return {
      ...job,
      status: TERMINAL.has(job.status) ? job.status : "running",
      progress: Math.max(job.progress ?? 0, data.percent ?? 0),
      fps: data.fps, speed: data.speed, eta_seconds: data.eta_seconds,
      out_time_seconds: data.out_time_seconds,
    };
  }
  if (type === "job.started") {
    return { ...job, status: TERMINAL.has(job.status) ? job.status : "running", worker: data.worker };
  }
  return job;
}

const EVENT_STATUS = {
  "job.started": "running", "job.completed": "completed", "job.failed": "failed", "job.cancelled": "cancelled",
};
const RANK = { queued: 0, running: 1, completed: 2, failed: 2, cancelled: 2 };

/**
 * GET the job after an event about it. The notifier and the gateway consume the same event
 * side by side, so the page may hear of it before the gateway has stored it: read again
 * (a few times, briefly) until the job has reached the event's status.
 */
export async function jobAfter(api, id, type) {
  const wanted = EVENT_STATUS[type];
  let job = await api(`/api/jobs/${id}`);
  for (let attempt = 0; wanted && RANK[job.status] < RANK[wanted] && attempt < 10; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 150 * (attempt + 1)));
    job = await api(`/api/jobs/${id}`);
  }
  return job;
}

/** True when ``next`` is an older state of ``current`` (a late answer), so it is ignored. */
export function isStale(next, current) {
  return Boolean(current) && next.attempt === current.attempt && RANK[next.status] < RANK[current.status];
}
