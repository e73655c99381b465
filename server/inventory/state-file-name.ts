import { createHash } from "node:crypto";

/**
 * File name (without folder) of a Machine's state file. A Machine name is a DNS-1123 subdomain
 * of up to 253 characters, but a file name has 255 bytes, and the atomic writer adds a temp
 * prefix and suffix (about 30 bytes). Names up to SHORT_NAME keep the readable `<name>.json`;
 * longer ones become `<first 120 characters>~<sha256 of the name, 32 hex>.json`. `~` never
 * appears in a Machine name, so the two forms cannot collide. The name is also inside the file.
 */
const SHORT_NAME = 180;

export function stateFileName(name: string): string {
  if (name.length <= SHORT_NAME) return `${name}.json`;
  const digest = createHash("sha256").update(name).digest("hex").slice(0, 32);
  return `${name.slice(0, 120)}~${digest}.json`;
}
