// The scheduling rules, ported from webapp/scheduling.py so the phone builds today's list with the
// same rules as the server. Both sides run tests/vectors/scheduling.json (node --test tests/js/).
//
// Pure functions, no dependencies, no clock: `now` is always passed in. Days are plain
// "YYYY-MM-DD" strings; the arithmetic is done on day numbers (days since 1970-01-01) and only then
// combined with a wall time and the rep's IANA zone (atLocal), exactly as the Python does. Zones
// come from Intl.DateTimeFormat, so this runs in browsers and in node 20 alike.

export const OUTCOMES = Object.freeze(["reached", "left_message", "no_answer"]);
export const DEFAULT_TIERS = Object.freeze({ A: 30, B: 90, C: 180 });
export const DEFAULT_CALL_TIME = "09:00";
export const RECONNECT_LIMIT = 5;

const DAY_MS = 86400000;
const WEEKDAY_KEYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const WEEKDAY_SHORT = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTH_SHORT = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const HHMM = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
// Same grammar as the Python _TIER_TAG: "A", "tier a", "Tier:A", "tier-a", "tier_a", "tierA".
const TIER_TAG = /^(?:tier\s*[:\-_]?\s*)?(\S+)$/i;
// ISO 8601 with a mandatory offset, as API.md requires ("Z" or "+hh:mm").
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

// ---------------------------------------------------------------------------------------------
// Instants and zones

/** Turn a Date, epoch milliseconds or an ISO string with an offset into a Date; throw otherwise. */
export function toDate(value, name = "value") {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new RangeError(`${name} is an invalid Date`);
    return value;
  }
  if (typeof value === "number" && Number.isFinite(value)) return new Date(value);
  if (typeof value === "string") {
    // A timestamp without an offset would silently be read in the device's own zone.
    if (!ISO_INSTANT.test(value.trim())) {
      throw new RangeError(`${name} must be an ISO 8601 timestamp with an offset, got ${value}`);
    }
    // The one form every engine parses: "T", ".", "Z" and "+hh:mm", at most milliseconds
    // (engines differ on longer fractions; the server may send microseconds).
    const text = value
      .trim()
      .toUpperCase()
      .replace(" ", "T")
      .replace(",", ".")
      .replace(/(\.\d{3})\d+/, "$1")
      .replace(/([+-]\d{2})(\d{2})$/, "$1:$2");
    const parsed = new Date(text);
    if (!Number.isNaN(parsed.getTime())) return parsed;
  }
  throw new RangeError(`${name} must be an instant, got ${value}`);
}

const formatters = new Map();

function formatterFor(timezone) {
  let fmt = formatters.get(timezone);
  if (!fmt) {
    // Throws a RangeError for an unknown zone, as ZoneInfo would.
    fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
      era: "short",
    });
    formatters.set(timezone, fmt);
  }
  return fmt;
}

/** The wall clock in `timezone` at the instant `ms`: {year, month, day, hour, minute, second}. */
function wallParts(ms, timezone) {
  const out = {};
  for (const part of formatterFor(timezone).formatToParts(new Date(ms))) {
    if (part.type === "era") out.era = part.value;
    else if (part.type !== "literal") out[part.type] = Number(part.value);
  }
  if (out.era === "BC" || out.era === "B") out.year = 1 - out.year;
  if (out.hour === 24) out.hour = 0; // older engines say 24:00 for midnight
  return out;
}

function utcMs(year, month, day, hour = 0, minute = 0, second = 0) {
  // setUTCFullYear, not Date.UTC(year, ...): Date.UTC maps years 0..99 to 1900..1999.
  const d = new Date(Date.UTC(2000, 0, 1, hour, minute, second));
  d.setUTCFullYear(year, month - 1, day);
  return d.getTime();
}

function rawOffset(ms, timezone) {
  const whole = Math.floor(ms / 1000) * 1000;
  const p = wallParts(whole, timezone);
  return utcMs(p.year, p.month, p.day, p.hour, p.minute, p.second) - whole;
}

// Offsets by zone and UTC day: formatting is the costly step, and a list of a thousand clients
// asks about the same few hundred days. A day whose first and last second share an offset has no
// change in it (zones change at most once a day); a day with a change is worked out per instant.
const offsetCache = new Map();

/** The offset of `timezone` from UTC at the instant `ms`, in milliseconds (east positive). */
export function zoneOffset(ms, timezone) {
  const day = Math.floor(ms / DAY_MS);
  const key = `${timezone}|${day}`;
  let offset = offsetCache.get(key);
  if (offset === undefined) {
    const first = rawOffset(day * DAY_MS, timezone);
    offset = first === rawOffset((day + 1) * DAY_MS - 1000, timezone) ? first : null;
    if (offsetCache.size > 20000) offsetCache.clear();
    offsetCache.set(key, offset);
  }
  return offset === null ? rawOffset(ms, timezone) : offset;
}

// ---------------------------------------------------------------------------------------------
// Days: "YYYY-MM-DD" strings, computed as day numbers

function dayNumber(day) {
  const m = DAY_RE.exec(day);
  if (!m) throw new RangeError(`expected a day as YYYY-MM-DD, got ${day}`);
  return Math.round(utcMs(Number(m[1]), Number(m[2]), Number(m[3])) / DAY_MS);
}

function dayString(n) {
  const d = new Date(n * DAY_MS);
  const y = d.getUTCFullYear();
  const year = y >= 0 && y <= 9999 ? String(y).padStart(4, "0") : String(y);
  return `${year}-${String(d.getUTCMonth() + 1).padStart(2, "0")}-${String(d.getUTCDate()).padStart(2, "0")}`;
}

/** Add `n` calendar days to a "YYYY-MM-DD" day. */
export function addDays(day, n) {
  return dayString(dayNumber(day) + n);
}

/** Whole days from `a` to `b` (b - a), both "YYYY-MM-DD". */
export function daysBetween(a, b) {
  return dayNumber(b) - dayNumber(a);
}

/** The weekday of a day, 0 = Monday .. 6 = Sunday (Python's date.weekday()). */
export function weekday(day) {
  return (((dayNumber(day) + 3) % 7) + 7) % 7; // 1970-01-01 was a Thursday (3)
}

/** The rep's calendar day ("YYYY-MM-DD") at the instant `date`, in `timezone`. */
export function localDay(date, timezone) {
  const ms = toDate(date, "date").getTime();
  return dayString(Math.floor((ms + zoneOffset(ms, timezone)) / DAY_MS));
}

/** The wall time "H:MM" (24-hour, no leading zero on the hour) of `date` in `timezone`. */
export function localTime(date, timezone) {
  const p = wallParts(toDate(date, "date").getTime(), timezone);
  return `${p.hour}:${String(p.minute).padStart(2, "0")}`;
}

/** Parse a wall time "HH:MM" (24-hour, two digits each) into {hour, minute}; throw otherwise. */
export function parseHhmm(value) {
  const m = typeof value === "string" ? HHMM.exec(value) : null;
  if (!m) throw new RangeError(`expected a time as HH:MM, got ${value}`);
  return { hour: Number(m[1]), minute: Number(m[2]) };
}

/**
 * The instant (a Date) when clocks in `timezone` read `callTime` ("HH:MM") on `day`.
 *
 * Like Python's at_local (fold=0): an ambiguous wall time (clocks going back) gives its first
 * occurrence; a wall time in a gap (clocks going forward) uses the offset from before the change,
 * so 02:30 on a day that jumps from 02:00 to 03:00 gives 03:30.
 */
export function atLocal(day, callTime, timezone) {
  const { hour, minute } = parseHhmm(callTime);
  const wall = dayNumber(day) * DAY_MS + (hour * 60 + minute) * 60000;
  // The offsets a day either side: any transition that matters lies between them (offsets are
  // within -12h..+14h, and zones do not change twice in two days).
  const before = zoneOffset(wall - DAY_MS, timezone);
  const after = zoneOffset(wall + DAY_MS, timezone);
  if (before === after) return new Date(wall - before);
  const validBefore = zoneOffset(wall - before, timezone) === before;
  const validAfter = zoneOffset(wall - after, timezone) === after;
  // Only the later offset fits: the wall time is past the change. Otherwise (before the change, in
  // an overlap where both fit, or in a gap where neither does) fold=0 takes the earlier offset.
  if (validAfter && !validBefore) return new Date(wall - after);
  return new Date(wall - before);
}

/** The instant at which `day` ends in `timezone`: the first instant of the next day. */
export function endOfLocalDay(day, timezone) {
  return atLocal(addDays(day, 1), "00:00", timezone);
}

/** True for Monday to Friday. Public holidays are not modelled. */
export function isBusinessDay(day) {
  return weekday(day) < 5;
}

/** The day `n` business days after `day` (n >= 1), skipping Saturdays and Sundays. */
export function addBusinessDays(day, n) {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be at least 1, got ${n}`);
  let result = day;
  let remaining = n;
  while (remaining) {
    result = addDays(result, 1);
    if (isBusinessDay(result)) remaining -= 1;
  }
  return result;
}

/** The first day strictly after `day` on `wd` (0 = Monday .. 6 = Sunday). */
export function nextWeekday(day, wd) {
  if (!Number.isInteger(wd) || wd < 0 || wd > 6) {
    throw new RangeError(`weekday must be 0..6, got ${wd}`);
  }
  return addDays(day, ((((wd - weekday(day) - 1) % 7) + 7) % 7) + 1);
}

function rollToMonday(day) {
  return isBusinessDay(day) ? day : nextWeekday(day, 0);
}

/** The same day next month, clamped to that month's last day (Jan 31 -> Feb 28/29). */
function sameDayNextMonth(day) {
  const [y, m, d] = day.split("-").map(Number);
  const [year, month] = m === 12 ? [y + 1, 1] : [y, m + 1];
  const last = new Date(utcMs(year, month + 1, 0)).getUTCDate(); // day 0 = last of `month`
  return dayString(Math.round(utcMs(year, month, Math.min(d, last)) / DAY_MS));
}

// ---------------------------------------------------------------------------------------------
// Cadence, suggestions, quick picks

/**
 * A client's check-in rhythm in days, or null. A per-client cadenceDays wins; otherwise the tier
 * tags decide ("A", "tier b", "Tier:C", compared case-insensitively with the keys of `tiers`),
 * the shortest cadence winning.
 */
export function effectiveCadence(cadenceDays, tags, tiers = DEFAULT_TIERS) {
  if (cadenceDays !== null && cadenceDays !== undefined) return cadenceDays;
  const byName = new Map();
  for (const [name, days] of Object.entries(tiers ?? DEFAULT_TIERS)) {
    byName.set(name.toLowerCase(), days);
  }
  let best = null;
  for (const tag of tags ?? []) {
    if (typeof tag !== "string") continue;
    const m = TIER_TAG.exec(tag.trim());
    if (!m) continue;
    const days = byName.get(m[1].toLowerCase());
    if (days !== undefined && days !== null && (best === null || days < best)) best = days;
  }
  return best;
}

/**
 * The suggested next callback (a Date) after a call with `outcome`, or null.
 * left_message: 2 business days; no_answer: the next business day; reached: today + cadence,
 * moved to Monday from a weekend, or null without a cadence.
 */
export function suggestCallback({ outcome, now, timezone, callTime = DEFAULT_CALL_TIME, cadenceDays = null }) {
  if (!OUTCOMES.includes(outcome)) {
    throw new RangeError(`unknown outcome ${outcome}; expected one of ${OUTCOMES.join(", ")}`);
  }
  const today = localDay(toDate(now, "now"), timezone);
  let day;
  if (outcome === "left_message") {
    day = addBusinessDays(today, 2);
  } else if (outcome === "no_answer") {
    day = addBusinessDays(today, 1);
  } else {
    if (cadenceDays === null || cadenceDays === undefined) return null;
    if (!Number.isInteger(cadenceDays) || cadenceDays < 1) {
      throw new RangeError(`cadenceDays must be at least 1, got ${cadenceDays}`);
    }
    day = rollToMonday(addDays(today, cadenceDays));
  }
  return atLocal(day, callTime, timezone);
}

/**
 * The one-tap choices for the next callback, in display order:
 * [{key, label, day: "YYYY-MM-DD", dueAt: Date}]. Tomorrow; each business day from today + 2 to
 * today + 6 by weekday name; Next week (next Monday); In a month (same day next month, clamped,
 * weekend moved to Monday). "A date" and "None" are UI choices, not here.
 */
export function quickPicks({ now, timezone, callTime = DEFAULT_CALL_TIME }) {
  const today = localDay(toDate(now, "now"), timezone);
  const days = [["tomorrow", "Tomorrow", addDays(today, 1)]];
  for (let offset = 2; offset <= 6; offset += 1) {
    const day = addDays(today, offset);
    if (isBusinessDay(day)) days.push([WEEKDAY_KEYS[weekday(day)], WEEKDAY_NAMES[weekday(day)], day]);
  }
  days.push(["next_week", "Next week", nextWeekday(today, 0)]);
  days.push(["in_a_month", "In a month", rollToMonday(sameDayNextMonth(today))]);
  return days.map(([key, label, day]) => ({ key, label, day, dueAt: atLocal(day, callTime, timezone) }));
}

// ---------------------------------------------------------------------------------------------
// Today's list

function compareStrings(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Today's list: promised callbacks due by the end of the rep's day (overdue first, oldest first),
 * then due cadences (most overdue first), then at most `reconnectLimit` reconnects (longest silent
 * first). A client appears once. Mirrors webapp/scheduling.py build_today.
 *
 * `clients` and `callbacks` are API objects (API.md): archived clients (archived_at set) and
 * callbacks that are not open (status other than "open") are skipped, as are callbacks of clients
 * not in `clients`. A client's cadence is effectiveCadence(cadence_days, tags, tiers). A client
 * object may carry has_open_callback (the shared vectors do); otherwise it is derived from the
 * open callbacks given.
 *
 * Returns [{clientId, reason: "callback"|"cadence"|"reconnect", dueAt: Date|null, overdue,
 * daysOverdue, callbackId: string|null}].
 */
export function buildToday({
  now,
  timezone,
  callTime = DEFAULT_CALL_TIME,
  reconnectAfterDays = 90,
  reconnectLimit = RECONNECT_LIMIT,
  tiers = DEFAULT_TIERS,
  clients = [],
  callbacks = [],
}) {
  const nowDate = toDate(now, "now");
  if (!Number.isInteger(reconnectLimit) || reconnectLimit < 0) {
    throw new RangeError(`reconnectLimit must not be negative, got ${reconnectLimit}`);
  }
  parseHhmm(callTime);
  const today = localDay(nowDate, timezone);
  const dayEnds = endOfLocalDay(today, timezone).getTime();
  const active = [];
  const activeIds = new Set();
  for (const client of clients) {
    if (!client || client.archived_at) continue;
    active.push(client);
    activeIds.add(client.id);
  }
  const items = [];
  const listed = new Set();

  // 1. Open callbacks due by the end of the rep's day; a client with several shows its earliest.
  const open = [];
  for (const cb of callbacks) {
    if (!cb || (cb.status !== undefined && cb.status !== null && cb.status !== "open")) continue;
    if (!activeIds.has(cb.client_id)) continue;
    open.push({ id: cb.id, clientId: cb.client_id, dueAt: toDate(cb.due_at, "due_at") });
  }
  const withCallback = new Set(open.map((cb) => cb.clientId));
  const due = open.filter((cb) => cb.dueAt.getTime() < dayEnds);
  due.sort((a, b) => a.dueAt - b.dueAt || compareStrings(a.id, b.id));
  for (const cb of due) {
    if (listed.has(cb.clientId)) continue;
    listed.add(cb.clientId);
    const overdue = cb.dueAt.getTime() < nowDate.getTime();
    items.push({
      clientId: cb.clientId,
      reason: "callback",
      dueAt: cb.dueAt,
      overdue,
      daysOverdue: overdue ? daysBetween(localDay(cb.dueAt, timezone), today) : 0,
      callbackId: cb.id,
    });
  }

  // A client with any open callback, even one due next week, is looked after by the promise.
  const candidates = active.filter(
    (c) => !(c.has_open_callback === true || withCallback.has(c.id)) && !listed.has(c.id),
  );
  const cadenceOf = (c) => effectiveCadence(c.cadence_days, c.tags, tiers);

  // 2. Cadences come due counting from the last touch, or from when the client was added.
  const dueCadences = [];
  for (const client of candidates) {
    const cadence = cadenceOf(client);
    if (cadence === null) continue;
    const anchor = client.last_touch_at ?? client.created_at;
    const dueDay = addDays(localDay(toDate(anchor, "the cadence anchor"), timezone), cadence);
    if (dueDay <= today) dueCadences.push({ daysOverdue: daysBetween(dueDay, today), id: client.id, dueDay });
  }
  dueCadences.sort((a, b) => b.daysOverdue - a.daysOverdue || compareStrings(a.id, b.id));
  for (const entry of dueCadences) {
    if (listed.has(entry.id)) continue;
    listed.add(entry.id);
    items.push({
      clientId: entry.id,
      reason: "cadence",
      dueAt: atLocal(entry.dueDay, callTime, timezone),
      overdue: entry.dueDay < today,
      daysOverdue: entry.daysOverdue,
      callbackId: null,
    });
  }

  // 3. Reconnects: no rhythm, and never touched or silent for reconnectAfterDays. Never-touched
  // first (oldest added first), then by last touch; only a few a day.
  const silentSince = addDays(today, -reconnectAfterDays);
  const quiet = [];
  for (const client of candidates) {
    if (cadenceOf(client) !== null) continue;
    if (client.last_touch_at === null || client.last_touch_at === undefined) {
      quiet.push({ rank: 0, at: toDate(client.created_at, "created_at").getTime(), id: client.id });
    } else {
      const last = toDate(client.last_touch_at, "last_touch_at");
      if (localDay(last, timezone) <= silentSince) quiet.push({ rank: 1, at: last.getTime(), id: client.id });
    }
  }
  quiet.sort((a, b) => a.rank - b.rank || a.at - b.at || compareStrings(a.id, b.id));
  let reconnects = 0;
  for (const entry of quiet) {
    if (reconnects >= reconnectLimit) break;
    if (listed.has(entry.id)) continue;
    listed.add(entry.id);
    reconnects += 1;
    items.push({
      clientId: entry.id,
      reason: "reconnect",
      dueAt: null,
      overdue: false,
      daysOverdue: 0,
      callbackId: null,
    });
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// Plain words for the UI

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * A due instant in words, relative to the rep's today: "today 9:00", "tomorrow 9:00",
 * "yesterday 9:00", "Thu 9:00" (within six days either side), else "12 Mar 9:00" (with the year
 * when it is not this year's).
 */
export function formatDue(date, { now, timezone }) {
  const at = toDate(date, "date");
  const day = localDay(at, timezone);
  const today = localDay(toDate(now, "now"), timezone);
  const time = localTime(at, timezone);
  const diff = daysBetween(today, day);
  if (diff === 0) return `today ${time}`;
  if (diff === 1) return `tomorrow ${time}`;
  if (diff === -1) return `yesterday ${time}`;
  if (Math.abs(diff) <= 6) return `${WEEKDAY_SHORT[weekday(day)]} ${time}`;
  return `${formatDay(day, { today })} ${time}`;
}

/** A day in words: "Thu 12 Mar", with the year when it is not `today`'s year. */
export function formatDay(day, { today = null } = {}) {
  const [y, m, d] = day.split("-").map(Number);
  const base = `${WEEKDAY_SHORT[weekday(day)]} ${d} ${MONTH_SHORT[m - 1]}`;
  return today && Number(today.slice(0, 4)) !== y ? `${base} ${y}` : base;
}

/** The name of a check-in rhythm: "Weekly", "Monthly", ..., or null for an unnamed one. */
export function cadenceName(days) {
  if (days === 7) return "Weekly";
  if (days === 14) return "Fortnightly";
  if (days >= 28 && days <= 31) return "Monthly";
  if (days >= 89 && days <= 92) return "Quarterly";
  if (days >= 180 && days <= 183) return "Twice-yearly";
  if (days === 365 || days === 366) return "Yearly";
  return null;
}

/**
 * The reason for a line of today's list, in plain words:
 * "Promised callback · Thu 9:00 · overdue", "Promised callback · today 14:00",
 * "Monthly check-in · 12 days overdue" (or "· due today"), "Check-in every 10 days · ...",
 * "No contact for 210 days", "Never contacted".
 */
export function reasonText(item, client, { now, timezone, tiers = DEFAULT_TIERS }) {
  if (item.reason === "callback") {
    const when = item.dueAt ? ` · ${formatDue(item.dueAt, { now, timezone })}` : "";
    return `Promised callback${when}${item.overdue ? " · overdue" : ""}`;
  }
  if (item.reason === "cadence") {
    const days = client ? effectiveCadence(client.cadence_days, client.tags, tiers) : null;
    const name = days === null ? null : cadenceName(days);
    const rhythm = name ? `${name} check-in` : days ? `Check-in every ${days} days` : "Check-in";
    const due = item.daysOverdue > 0 ? `${plural(item.daysOverdue, "day")} overdue` : "due today";
    return `${rhythm} · ${due}`;
  }
  if (item.reason === "reconnect") {
    const last = client ? client.last_touch_at : null;
    if (last === null || last === undefined) return "Never contacted";
    const silent = daysBetween(localDay(toDate(last, "last_touch_at"), timezone), localDay(toDate(now, "now"), timezone));
    return `No contact for ${plural(silent, "day")}`;
  }
  return "";
}

/** An English ordinal: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 22nd, 101st, 111th. */
export function ordinal(n) {
  const mod100 = n % 100;
  if (mod100 >= 11 && mod100 <= 13) return `${n}th`;
  const suffix = { 1: "st", 2: "nd", 3: "rd" }[n % 10] ?? "th";
  return `${n}${suffix}`;
}

/**
 * The tries since the rep last reached a client, for the card: "" for none, else e.g.
 * "3rd try since you last reached them" for attempts_since_reached = 3.
 */
export function attemptsText(n) {
  if (!Number.isInteger(n) || n <= 0) return "";
  return `${ordinal(n)} try since you last reached them`;
}
