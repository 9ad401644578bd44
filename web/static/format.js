// How times, durations and numbers read on the pages.

// 24-hour, so milliseconds can follow the seconds.
const clockFmt = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'medium',
});

/** "1:05", "1:02:03"; "–" for nothing. */
export function duration(ms) {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** Local wall-clock time of an ISO 8601 string, with milliseconds when asked. */
export function clock(iso, withMs = false) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '–';
  const t = clockFmt.format(d);
  return withMs ? `${t}.${String(d.getMilliseconds()).padStart(3, '0')}` : t;
}

export function dateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '–' : dateTimeFmt.format(d);
}

export function ms(value) {
  return value == null || !Number.isFinite(value) ? '–' : `${Math.round(value)} ms`;
}

/** A <time> element for an ISO 8601 string. */
export function timeElement(iso, text) {
  const el = document.createElement('time');
  el.dateTime = iso || '';
  el.textContent = text;
  return el;
}
