import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import type { FastifyRequest } from "fastify";
import { Registry } from "prom-client";
import { buildHealthApp } from "../../../server/http/app.js";
import { BodyReadError, type BoundedBody, boundedBodyParser } from "../../../server/http/bounded-body.js";
import { errorCodeFor, HTTP_ERRORS } from "../../../server/http/errors.js";
import type { ReadinessReport } from "../../../server/http/health.js";
import { harness, LEASE_IP, silentLog } from "./support.js";

describe("health and metrics", () => {
  it("/healthz answers ok on both apps", async () => {
    const h = await harness();
    const health = buildHealthApp({ log: silentLog(), readiness: () => ({ ready: true, checks: {} }) });
    try {
      for (const app of [h.app, health]) {
        const res = await app.inject({ url: "/healthz" });
        assert.equal(res.statusCode, 200);
        assert.equal(res.body, "ok");
        const head = await app.inject({ method: "HEAD", url: "/healthz" });
        assert.equal(head.statusCode, 200);
      }
    } finally {
      await health.close();
      await h.close();
    }
  });

  it("/readyz reflects the readiness callback", async () => {
    let report: ReadinessReport = { ready: true, checks: { http: { ok: true } } };
    let fail = false;
    const app = buildHealthApp({
      log: silentLog(),
      readiness: () => {
        if (fail) throw new Error("broken");
        return report;
      },
    });
    try {
      const ok = await app.inject({ url: "/readyz" });
      assert.equal(ok.statusCode, 200);
      assert.equal(ok.body, "ok");
      report = {
        ready: false,
        checks: { http: { ok: true }, dhcp: { ok: false, detail: "socket not bound" }, images: { ok: false } },
      };
      const notReady = await app.inject({ url: "/readyz" });
      assert.equal(notReady.statusCode, 503);
      assert.equal(notReady.body, "[-]dhcp failed: socket not bound\n[-]images failed: not ok\nreadyz check failed\n");
      fail = true;
      const threw = await app.inject({ url: "/readyz" });
      assert.equal(threw.statusCode, 503);
      const wrong = await app.inject({ method: "POST", url: "/readyz" });
      assert.equal(wrong.statusCode, 405);
      const unknown = await app.inject({ url: "/metrics" });
      assert.equal(unknown.statusCode, 404);
    } finally {
      await app.close();
    }
  });

  it("/readyz details (file names, YAML) only on the health listener, not on the netboot port (§4.3)", async () => {
    const detail = '2 invalid: /etc/metalman/machines/node-01.yaml: spec.pxe.image: must be ... `image: "x"`';
    const report: ReadinessReport = {
      ready: false,
      checks: { http: { ok: true }, inventory: { ok: false, detail } },
    };
    const h = await harness({ app: { readiness: () => report } });
    const health = buildHealthApp({ log: silentLog(), readiness: () => report });
    try {
      const netboot = await h.app.inject({ url: "/readyz", remoteAddress: LEASE_IP });
      assert.equal(netboot.statusCode, 503);
      assert.equal(netboot.body, "[-]inventory failed\nreadyz check failed\n");
      assert.doesNotMatch(netboot.body, /yaml|node-01|\/etc/);
      const onHealth = await health.inject({ url: "/readyz" });
      assert.equal(onHealth.statusCode, 503);
      assert.equal(onHealth.body, `[-]inventory failed: ${detail}\nreadyz check failed\n`);
      // Nothing in the netboot port's /metrics names an inventory file either.
      const metrics = await h.app.inject({ url: "/metrics", remoteAddress: LEASE_IP });
      assert.doesNotMatch(metrics.body, /\.yaml|\/etc\/metalman/);
    } finally {
      await health.close();
      await h.close();
    }
  });

  it("/metrics exposes the registry passed in, with HTTP counters", async () => {
    const h = await harness();
    try {
      await h.app.inject({ url: "/vmlinuz", remoteAddress: LEASE_IP });
      const res = await h.app.inject({ url: "/metrics" });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["content-type"]), /^text\/plain/);
      assert.match(res.body, /metalman_http_requests_total\{route="\/\*",status="200"\} 1/);
      assert.match(res.body, /metalman_http_artifact_bytes_total\{kind="file"\} 300000/);
    } finally {
      await h.close();
    }
  });

  it("two apps on one registry share the collectors", async () => {
    const registry = new Registry();
    const a = buildHealthApp({ log: silentLog(), readiness: () => ({ ready: true, checks: {} }), metrics: registry });
    const b = buildHealthApp({ log: silentLog(), readiness: () => ({ ready: true, checks: {} }), metrics: registry });
    await a.ready();
    await b.ready();
    await Promise.all([a.close(), b.close()]);
  });
});

describe("errors", () => {
  it("a body read error is a 400 bad request", async () => {
    const stream = new PassThrough();
    const result = new Promise<Error | null>((resolve) =>
      boundedBodyParser(16)({} as FastifyRequest, stream, (error) => resolve(error)),
    );
    stream.write("abc");
    stream.destroy(new Error("aborted"));
    const error = await result;
    assert.ok(error instanceof BodyReadError);
    assert.equal(errorCodeFor(error as never), "BAD_REQUEST");
    assert.equal(HTTP_ERRORS.BAD_REQUEST.message, "bad request");
  });

  it("the bounded body keeps the first bytes and flags truncation", async () => {
    const stream = new PassThrough();
    const result = new Promise<BoundedBody | undefined>((resolve) =>
      boundedBodyParser(4)({} as FastifyRequest, stream, (_error, body) => resolve(body)),
    );
    stream.end("abcdefgh");
    const body = await result;
    assert.equal(body?.bytes.toString(), "abcd");
    assert.equal(body?.truncated, true);
  });
});
