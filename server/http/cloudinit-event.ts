import type { ConditionUpdate } from "../inventory/conditions.js";

/** One cloud-init webhook reporter event (spec §5.7). */
export interface CloudInitEvent {
  name: string;
  description: string;
  eventType: string;
  origin: string;
  timestamp: number;
  result: string;
}

export const CLOUD_INIT_DONE = "CloudInitDone";
export const CLOUD_INIT_LAST_STAGE = "modules-final";
export const MAX_CONDITION_MESSAGE_BYTES = 1024;

const STRING_FIELDS = {
  name: "name",
  description: "description",
  event_type: "eventType",
  origin: "origin",
  result: "result",
} as const;

/**
 * Decodes the body the way upstream's Go `json.Unmarshal` into a struct would: keys match
 * case-insensitively (a later key overwrites), unknown keys are ignored, `null` leaves a
 * field empty, and a value of the wrong type fails the whole event. A top-level `null`
 * is an empty event. Returns undefined when the body does not decode.
 */
export function parseCloudInitEvent(body: Buffer): CloudInitEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
  const event: CloudInitEvent = { name: "", description: "", eventType: "", origin: "", timestamp: 0, result: "" };
  if (value === null) return event;
  if (typeof value !== "object" || Array.isArray(value)) return undefined;
  for (const [key, field] of Object.entries(value as Record<string, unknown>)) {
    const lower = key.toLowerCase();
    if (lower === "timestamp") {
      if (field === null) continue;
      if (typeof field !== "number") return undefined;
      event.timestamp = field;
    } else if (lower in STRING_FIELDS) {
      if (field === null) continue;
      if (typeof field !== "string") return undefined;
      event[STRING_FIELDS[lower as keyof typeof STRING_FIELDS]] = field;
    }
  }
  return event;
}

/** The CloudInitDone condition an event asks for, or undefined when it changes nothing. */
export function cloudInitCondition(event: CloudInitEvent, generation: number | undefined): ConditionUpdate | undefined {
  const base = { type: CLOUD_INIT_DONE, observedGeneration: generation ?? 0 };
  switch (event.eventType) {
    case "start":
      return {
        ...base,
        status: "False",
        reason: "Running",
        message: `stage ${goQuote(event.name)} started: ${event.description}`,
      };
    case "finish":
      if (event.result.toUpperCase() !== "SUCCESS") {
        return {
          ...base,
          status: "False",
          reason: "Failed",
          message: cutMessage(
            `stage ${goQuote(event.name)} failed with result ${goQuote(event.result)}: ${event.description}`,
          ),
        };
      }
      if (event.name === CLOUD_INIT_LAST_STAGE) {
        return { ...base, status: "True", reason: "Succeeded", message: "cloud-init completed successfully" };
      }
      return {
        ...base,
        status: "False",
        reason: "Running",
        message: `stage ${goQuote(event.name)} finished successfully, waiting for remaining stages`,
      };
    default:
      return undefined;
  }
}

/**
 * Upstream cuts at 1024 bytes: the first 1021 bytes + `...`. We cut on the same byte
 * budget but never inside a UTF-8 sequence (upstream could emit invalid UTF-8 there).
 */
export function cutMessage(message: string): string {
  const bytes = Buffer.from(message, "utf8");
  if (bytes.length <= MAX_CONDITION_MESSAGE_BYTES) return message;
  let end = MAX_CONDITION_MESSAGE_BYTES - 3;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8") + "...";
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const SHORT_ESCAPES: Record<string, string> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\v": "\\v",
  '"': '\\"',
  "\\": "\\\\",
};

/** Go's `%q` / strconv.Quote for a string: the messages must match upstream byte for byte. */
export function goQuote(value: string): string {
  let out = '"';
  for (const char of value) {
    const short = SHORT_ESCAPES[char];
    if (short !== undefined) {
      out += short;
      continue;
    }
    const code = char.codePointAt(0)!;
    if (code >= 0xd800 && code <= 0xdfff)
      out += "\ufffd"; // lone surrogate: Go decodes it as U+FFFD
    else if (PRINTABLE.test(char)) out += char;
    else if (code < 0x80) out += "\\x" + code.toString(16).padStart(2, "0");
    else if (code < 0x10000) out += "\\u" + code.toString(16).padStart(4, "0");
    else out += "\\U" + code.toString(16).padStart(8, "0");
  }
  return out + '"';
}
