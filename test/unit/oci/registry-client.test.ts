/**
 * The registry client's HTTP behaviour against small loopback servers, for what Debian's
 * registry does not do on its own: 429/503 with Retry-After, a Bearer token realm, a redirect
 * to another origin (blob storage), TLS with a configured CA (certificate made by openssl).
 * The real registry is exercised in test/lab/oci-*.test.ts.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { pino } from "pino";
import { MEDIA_OCI_MANIFEST } from "../../../server/oci/manifest.js";
import { parseReference } from "../../../server/oci/reference.js";
import { RegistryClient } from "../../../server/oci/registry-client.js";
import { selfSignedSync } from "../../support/self-signed.js";

const log = pino({ level: "silent" });
const blob = Buffer.from("layer bytes");
const blobDigest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: blobDigest, size: blob.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: blobDigest, size: blob.length }],
  }),
);
const scratch = mkdtempSync(path.join(tmpdir(), "oc-client-"));
const servers: Array<http.Server> = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
  rmSync(scratch, { recursive: true, force: true });
});

async function serve(handler: http.RequestListener, server: http.Server = http.createServer()): Promise<number> {
  server.on("request", handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

const fast = { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 };
const creds = () => undefined;

describe("registry client", () => {
  it("retries 503 and 429 (honouring Retry-After) and then succeeds", async () => {
    const seen: number[] = [];
    const port = await serve((_req, res) => {
      seen.push(Date.now());
      if (seen.length === 1) return res.writeHead(503).end();
      if (seen.length === 2) return res.writeHead(429, { "retry-after": "0" }).end();
      res.writeHead(200, { "content-type": MEDIA_OCI_MANIFEST }).end(manifest);
    });
    const client = new RegistryClient({ registries: { hosts: new Map(), insecure: new Set() }, log, retry: fast });
    const got = await client.resolve(parseReference(`127.0.0.1:${port}/a/b:v1`), creds);
    assert.equal(seen.length, 3);
    assert.equal(got.digest, `sha256:${createHash("sha256").update(manifest).digest("hex")}`);
    await client.close();
  });

  it("does not retry a 404, and names the registry's error", async () => {
    let count = 0;
    const port = await serve((_req, res) => {
      count++;
      res.writeHead(404).end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }));
    });
    const client = new RegistryClient({ registries: { hosts: new Map(), insecure: new Set() }, log, retry: fast });
    await assert.rejects(
      client.resolve(parseReference(`127.0.0.1:${port}/a/b:v1`), creds),
      /not found \(MANIFEST_UNKNOWN: manifest unknown\)/,
    );
    assert.equal(count, 1);
    await client.close();
  });

  it("gets a Bearer token from the realm, and never sends it on a redirect to another origin", async () => {
    const storageSaw: Array<string | undefined> = [];
    const storage = await serve((req, res) => {
      storageSaw.push(req.headers.authorization);
      res.writeHead(200, { "content-length": blob.length }).end(blob);
    });
    const tokenSaw: string[] = [];
    const port = await serve((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/token") {
        tokenSaw.push(
          `${url.searchParams.get("service")} ${url.searchParams.get("scope")} ${req.headers.authorization}`,
        );
        return res.writeHead(200).end(JSON.stringify({ token: "tok-1", expires_in: 300 }));
      }
      if (req.headers.authorization !== "Bearer tok-1") {
        return res
          .writeHead(401, {
            "www-authenticate": `Bearer realm="http://127.0.0.1:${port}/token",service="reg",scope="repository:a/b:pull"`,
          })
          .end();
      }
      if (url.pathname.includes("/blobs/"))
        return res.writeHead(307, { location: `http://127.0.0.1:${storage}/bucket/obj?sig=1` }).end();
      res.writeHead(200, { "content-type": MEDIA_OCI_MANIFEST }).end(manifest);
    });
    const client = new RegistryClient({ registries: { hosts: new Map(), insecure: new Set() }, log, retry: fast });
    const lookup = (host: string) => (host === `127.0.0.1:${port}` ? { username: "u", password: "p" } : undefined);
    const got = await client.resolve(parseReference(`127.0.0.1:${port}/a/b:v1`), lookup);
    const dest = path.join(scratch, "blob");
    await client.fetchBlob(
      { endpoint: got.endpoint, credentials: lookup },
      { mediaType: "x", digest: blobDigest, size: blob.length },
      dest,
      `${dest}.partial`,
      () => {},
    );
    assert.deepEqual(readFileSync(dest), blob);
    assert.deepEqual(tokenSaw, [`reg repository:a/b:pull Basic ${Buffer.from("u:p").toString("base64")}`]);
    assert.deepEqual(storageSaw, [undefined], "blob storage never sees the registry's Authorization");
    await client.close();
  });

  it("uses plain HTTP only for loopback and insecure registries", () => {
    const client = new RegistryClient({
      registries: { hosts: new Map(), insecure: new Set(["lab.example:5000"]) },
      log,
    });
    assert.equal(client.endpointsOf(parseReference("registry.example/x:1"))[0]?.origin, "https://registry.example");
    assert.equal(client.endpointsOf(parseReference("10.0.0.5:5000/x:1"))[0]?.origin, "https://10.0.0.5:5000");
    assert.equal(client.endpointsOf(parseReference("lab.example:5000/x:1"))[0]?.origin, "http://lab.example:5000");
    assert.equal(client.endpointsOf(parseReference("localhost:5000/x:1"))[0]?.origin, "http://localhost:5000");
    assert.equal(client.endpointsOf(parseReference("debian"))[0]?.origin, "https://registry-1.docker.io");
  });

  it("verifies TLS against a configured CA bundle, and refuses without it", async () => {
    const { key, cert } = selfSignedSync("127.0.0.1", 1);
    const caFile = path.join(scratch, "cert.pem");
    writeFileSync(caFile, cert);
    const port = await serve(
      (_req, res) => res.writeHead(200, { "content-type": MEDIA_OCI_MANIFEST }).end(manifest),
      https.createServer({ key, cert }),
    );
    const host = `127.0.0.1:${port}`;
    const settings = (caBundle?: string) => ({
      insecure: false,
      tls: true,
      mirrors: [],
      mirrorsOnly: false,
      ...(caBundle ? { caBundle } : {}),
    });
    const trusted = new RegistryClient({
      registries: { hosts: new Map([[host, settings(caFile)]]), insecure: new Set() },
      log,
      retry: fast,
    });
    assert.equal((await trusted.resolve(parseReference(`${host}/a:v1`), creds)).endpoint.origin, `https://${host}`);
    await trusted.close();
    const untrusted = new RegistryClient({
      registries: { hosts: new Map([[host, settings()]]), insecure: new Set() },
      log,
      retry: fast,
    });
    await assert.rejects(untrusted.resolve(parseReference(`${host}/a:v1`), creds), /self.signed|certificate/i);
    await untrusted.close();
  });

  it("bounds manifest answers (4 MiB) and blob bodies (the descriptor's size)", async () => {
    const port = await serve((req, res) => {
      if (req.url?.includes("/manifests/")) return res.writeHead(200).end(Buffer.alloc(5 * 1024 * 1024, 32));
      res.writeHead(200).end(Buffer.concat([blob, Buffer.from("extra")]));
    });
    const client = new RegistryClient({ registries: { hosts: new Map(), insecure: new Set() }, log, retry: fast });
    await assert.rejects(
      client.resolve(parseReference(`127.0.0.1:${port}/a/b:v1`), creds),
      /larger than 4194304 bytes/,
    );
    const endpoint = client.endpointsOf(parseReference(`127.0.0.1:${port}/a/b:v1`))[0]!;
    const dest = path.join(scratch, "bounded");
    await assert.rejects(
      client.fetchBlob(
        { endpoint, credentials: creds },
        { mediaType: "x", digest: blobDigest, size: blob.length },
        dest,
        `${dest}.partial`,
        () => {},
      ),
      /sends 16 bytes, the manifest says 11|more bytes than the manifest says/,
    );
    await client.close();
  });

  it("downloads at most maxConcurrentBlobs blobs at once", async () => {
    let active = 0;
    let peak = 0;
    const port = await serve((_req, res) => {
      active++;
      peak = Math.max(peak, active);
      setTimeout(() => {
        active--;
        res.writeHead(200).end(blob);
      }, 60);
    });
    const client = new RegistryClient({
      registries: { hosts: new Map(), insecure: new Set() },
      log,
      retry: fast,
      maxConcurrentBlobs: 2,
    });
    const endpoint = client.endpointsOf(parseReference(`127.0.0.1:${port}/a/b:v1`))[0]!;
    await Promise.all(
      [1, 2, 3, 4, 5, 6].map((i) => {
        const dest = path.join(scratch, `c${i}`);
        return client.fetchBlob(
          { endpoint, credentials: creds },
          { mediaType: "x", digest: blobDigest, size: blob.length },
          dest,
          `${dest}.partial`,
          () => {},
        );
      }),
    );
    assert.equal(peak, 2);
    await client.close();
  });
});
