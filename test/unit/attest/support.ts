import { request } from "node:http";
import type { SecretReader } from "../../../server/inventory/secrets.js";
import type { SecretKeySelector } from "../../../server/inventory/types.js";

/** In-memory SecretReader (the file-backed one is another room's): `namespace/name` -> key -> value. */
export class MemorySecrets implements SecretReader {
  readonly #secrets = new Map<string, Record<string, string>>();
  reads = 0;

  set(namespace: string, name: string, data: Record<string, string>): void {
    this.#secrets.set(`${namespace}/${name}`, data);
  }

  async secretValue(ref: SecretKeySelector, defaultNamespace?: string): Promise<Buffer | undefined> {
    this.reads++;
    const data = this.#secrets.get(`${ref.namespace || defaultNamespace}/${ref.name}`);
    const value = ref.key === undefined ? undefined : data?.[ref.key];
    return value === undefined ? undefined : Buffer.from(value);
  }

  async configMapValue(): Promise<string | undefined> {
    return undefined;
  }
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One HTTP request from a chosen loopback source address (the Machine's lease IP is its identity). */
export function httpFrom(
  localAddress: string,
  port: number,
  method: string,
  urlPath: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, method, path: urlPath, localAddress, headers, agent: false, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end(body);
  });
}
