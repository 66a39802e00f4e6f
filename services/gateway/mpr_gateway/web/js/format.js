// Human-readable numbers: sizes, durations, ages, rates.

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
}

export function clock(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

export function age(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.floor(seconds)}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

export function time(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function number(value, digits = 1) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

/** "42% · 118 fps · 3.1× · ETA 0:05" from a job or a JobProgress event. */
export function progressText(p) {
  const parts = [`${Math.floor(p.progress ?? p.percent ?? 0)}%`];
  if (p.fps !== null && p.fps !== undefined) parts.push(`${Math.round(p.fps)} fps`);
  if (p.speed !== null && p.speed !== undefined) parts.push(`${Number(p.speed).toFixed(1)}×`);
  if (p.eta_seconds !== null && p.eta_seconds !== undefined) parts.push(`ETA ${clock(p.eta_seconds)}`);
  return parts.join(" · ");
}
