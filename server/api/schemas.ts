/**
 * JSON schemas shared by the surface plugins. Every object is closed (`additionalProperties:
 * false`): an unknown field is a typo the caller must hear about, not something dropped.
 */

/** A Machine or MachineOperation name: a DNS-1123 subdomain (what the stores accept). */
export const NAME_SCHEMA = {
  type: "string",
  minLength: 1,
  maxLength: 253,
  pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
} as const;

export const NAME_PARAMS = {
  type: "object",
  required: ["name"],
  additionalProperties: false,
  properties: { name: NAME_SCHEMA },
} as const;

export const TTL_SCHEMA = { type: "integer", minimum: 0, maximum: 2 ** 31 - 1 } as const;

/** Body of the machine action routes that take no other option. */
export const ACTION_BODY = {
  type: "object",
  additionalProperties: false,
  properties: { ttlSecondsAfterFinished: TTL_SCHEMA },
} as const;

export const EMPTY_QUERY = { type: "object", additionalProperties: false, properties: {} } as const;
