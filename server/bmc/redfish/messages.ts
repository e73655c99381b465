/**
 * `@Message.ExtendedInfo` out of a Redfish body, as short `MessageId: Message` strings for
 * conditions and events. The shapes differ by vendor (fixtures/redfish README, item 11): an
 * array or a single object, under `error` or at the top level, task `Messages`, `MessageArgs`
 * as a string (iDRAC). Never throws on shape; text is stripped of control characters and capped.
 */
const MAX_MESSAGES = 8;
const MAX_LENGTH = 300;

export function bmcMessages(body: unknown): string[] {
  if (typeof body !== "object" || body === null) return [];
  const b = body as Record<string, unknown>;
  const sources: unknown[] = [];
  const error = b.error;
  if (typeof error === "object" && error !== null) {
    const e = error as Record<string, unknown>;
    sources.push(e["@Message.ExtendedInfo"]);
    if (e["@Message.ExtendedInfo"] === undefined && (typeof e.message === "string" || typeof e.code === "string")) {
      sources.push({ MessageId: e.code, Message: e.message });
    }
  }
  sources.push(b["@Message.ExtendedInfo"], b.Messages);
  const out: string[] = [];
  for (const source of sources) {
    const list = Array.isArray(source) ? source : source === undefined || source === null ? [] : [source];
    for (const item of list) {
      const text = formatMessage(item);
      if (text && !out.includes(text)) out.push(text);
      if (out.length >= MAX_MESSAGES) return out;
    }
  }
  return out;
}

function formatMessage(item: unknown): string | undefined {
  if (typeof item === "string") return clean(item);
  if (typeof item !== "object" || item === null) return undefined;
  const m = item as Record<string, unknown>;
  const id = typeof m.MessageId === "string" ? m.MessageId : undefined;
  const message = typeof m.Message === "string" ? m.Message : undefined;
  if (!id && !message) return undefined;
  return clean(id && message ? `${id}: ${message}` : (id ?? message)!);
}

function clean(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return flat.length > MAX_LENGTH ? `${flat.slice(0, MAX_LENGTH)}…` : flat;
}

/** Whether a login refusal is the "too many sessions" kind (iDRAC RAC0218, DMTF SessionLimitExceeded...). */
export function isSessionLimit(status: number, messages: readonly string[]): boolean {
  if (status !== 503 && status !== 400 && status !== 429 && status !== 403) return false;
  return messages.some((m) =>
    /SessionLimitExceeded|RAC0218|maximum number of (user )?sessions|too many sessions/i.test(m),
  );
}
