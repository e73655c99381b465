import type { Readable } from "node:stream";
import { OciError } from "./errors.js";

/** Read a whole response body, refusing (and destroying) one longer than `limit` bytes. */
export async function readBounded(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > limit) {
      body.destroy();
      throw new OciError(`${what}: response is larger than ${limit} bytes`, "SIZE");
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}

/** Drain and discard a body we do not need (so the connection can be reused), bounded. */
export async function discard(body: Readable | undefined): Promise<void> {
  if (!body) return;
  let total = 0;
  try {
    for await (const chunk of body) {
      total += (chunk as Buffer).length;
      if (total > 64 * 1024) {
        body.destroy();
        return;
      }
    }
  } catch {
    // The body of an answer we discard may fail; nothing depends on it.
  }
}
