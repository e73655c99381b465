import type { FastifyError } from "fastify";

/** A catalogue written by status: `{ 404: { NOT_FOUND: "404 page not found" }, ... }`. */
export type ErrorsByStatus = Readonly<Record<number, Readonly<Record<string, string>>>>;

/** The codes of such a table. */
export type CodeOf<T extends ErrorsByStatus> = { [S in keyof T]: keyof T[S] }[keyof T] & string;

/** The catalogue by code: each code's status and its fixed message. */
export type ErrorCatalogue<T extends ErrorsByStatus> = {
  readonly [C in CodeOf<T>]: { readonly status: number; readonly message: string };
};

/**
 * Builds an error catalogue (the API's, server/api/errors.ts, and the netboot listener's,
 * server/http/errors.ts) from its table by status. A code stands once.
 */
export function errorCatalogue<const T extends ErrorsByStatus>(byStatus: T): ErrorCatalogue<T> {
  const catalogue: Record<string, { status: number; message: string }> = {};
  for (const [status, codes] of Object.entries(byStatus)) {
    for (const [code, message] of Object.entries(codes)) {
      if (code in catalogue) throw new Error(`error catalogue: ${code} stands twice`);
      catalogue[code] = { status: Number(status), message };
    }
  }
  return catalogue as ErrorCatalogue<T>;
}

/**
 * Fastify's own errors (schema validation, body read and limit, content type, timeouts, closing)
 * onto a catalogue: a schema error is `validation`, else the code of its status, else `fallback`.
 */
export function fastifyErrorCode<C extends string>(
  error: FastifyError,
  codes: { validation: C; fallback: C; byStatus: Readonly<Partial<Record<number, C>>> },
): C {
  if (error.validation) return codes.validation;
  return (error.statusCode === undefined ? undefined : codes.byStatus[error.statusCode]) ?? codes.fallback;
}
