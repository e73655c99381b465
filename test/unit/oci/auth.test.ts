import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseWwwAuthenticate } from "../../../server/oci/auth-challenge.js";
import { credentialsFor, parseDockerConfig } from "../../../server/oci/docker-config.js";

describe("WWW-Authenticate challenges", () => {
  it("parses a Bearer challenge with quoted parameters (commas and escapes inside)", () => {
    const [c] = parseWwwAuthenticate(
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",x="q\\"uote"',
    );
    assert.deepEqual(c, {
      scheme: "bearer",
      params: {
        realm: "https://auth.example/token",
        service: "registry.example",
        scope: "repository:a/b:pull,push",
        x: 'q"uote',
      },
    });
  });

  it("splits several challenges and lower-cases schemes and names", () => {
    const list = parseWwwAuthenticate('Basic realm="Registry Realm", BEARER Realm=https://t.example/token');
    assert.deepEqual(list, [
      { scheme: "basic", params: { realm: "Registry Realm" } },
      { scheme: "bearer", params: { realm: "https://t.example/token" } },
    ]);
  });

  it("tolerates garbage without throwing", () => {
    for (const junk of ["", "=", '"', "Bearer =,,=", 'Bearer realm="unterminated', "\u0000\u0001"]) {
      assert.ok(Array.isArray(parseWwwAuthenticate(junk)));
    }
  });
});

describe("docker config.json credentials", () => {
  it("reads auth (base64 user:password), username/password and identitytoken; keys as docker writes them", () => {
    const config = parseDockerConfig(
      JSON.stringify({
        auths: {
          "https://index.docker.io/v1/": { auth: Buffer.from("hub:p:w").toString("base64") },
          "registry.lab:5000": { username: "u", password: "p" },
          "http://Other.Example/": { identitytoken: "tok" },
          "empty.example": {},
        },
        credsStore: "desktop",
      }),
      "test",
    );
    assert.deepEqual(credentialsFor(config, "docker.io"), { username: "hub", password: "p:w" });
    assert.deepEqual(credentialsFor(config, "registry.lab:5000"), { username: "u", password: "p" });
    assert.deepEqual(credentialsFor(config, "other.example"), { username: "", password: "", identityToken: "tok" });
    assert.equal(credentialsFor(config, "empty.example"), undefined);
  });

  it("names the file, never a value, when it is malformed", () => {
    assert.throws(() => parseDockerConfig("{", "pull secret ns/x"), /^Error: pull secret ns\/x: not JSON$/);
    assert.throws(
      () =>
        parseDockerConfig(
          JSON.stringify({ auths: { h: { auth: Buffer.from("nocolon-secret").toString("base64") } } }),
          "f",
        ),
      (err: Error) => !err.message.includes("nocolon-secret") && /not base64 of user:password/.test(err.message),
    );
  });
});
