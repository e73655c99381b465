/**
 * The `wg setconf` text metalman writes and the `wg show dump` table it reads (wg-text.ts), and
 * the key file (overlay-key.ts): made once 0600, public key derived like `wg pubkey` does,
 * never replaced when it is unreadable by policy or corrupt.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { generateOverlayKey, loadOrCreateOverlayKey, publicKeyOf } from "../../../server/overlay/overlay-key.js";
import type { PlannedTunnel } from "../../../server/overlay/tunnel-plan.js";
import { matchesPlan, parseDump, renderSetconf } from "../../../server/overlay/wg-text.js";

const PEER = "QbgUSyYobRwzItqmHAviOMnvBEb7ORLZgpzOmp5fCAI=";

const tunnel: PlannedTunnel = {
  interfaceName: "wg51821",
  listenPort: 51821,
  mtu: 1420,
  peer: { publicKey: PEER, endpoint: "192.0.2.1:51820", allowedIPs: ["10.96.0.0/12", "10.244.1.0/24"] },
  gateway: { pool: "main-gw", node: "gw-1", assignment: "a" },
};

const haveWg = spawnSync("sh", ["-c", "command -v wg"]).status === 0;

describe("overlay wg text", () => {
  it("renders one interface and one peer with keepalive", () => {
    const key = generateOverlayKey();
    const text = renderSetconf(tunnel, key.privateKey);
    assert.equal(
      text,
      `[Interface]\nPrivateKey = ${key.privateKey}\nListenPort = 51821\n\n[Peer]\nPublicKey = ${PEER}\n` +
        "AllowedIPs = 10.96.0.0/12, 10.244.1.0/24\nPersistentKeepalive = 25\nEndpoint = 192.0.2.1:51820\n",
    );
    assert.throws(() => renderSetconf(tunnel, "nope"), /not a WireGuard key/);
  });

  it("parses a dump without keeping the private key, and tells whether it matches the plan", () => {
    const mine = generateOverlayKey();
    const dump =
      `${mine.privateKey}\t${mine.publicKey}\t51821\toff\n` +
      `${PEER}\t(none)\t192.0.2.1:51820\t10.96.0.0/12,10.244.1.0/24\t1764633600\t1480\t2960\t25\n`;
    const shown = parseDump(dump);
    assert.ok(shown);
    assert.equal(JSON.stringify(shown).includes(mine.privateKey), false);
    assert.deepEqual(shown.peers[0], {
      publicKey: PEER,
      endpoint: "192.0.2.1:51820",
      allowedIPs: ["10.96.0.0/12", "10.244.1.0/24"],
      latestHandshake: 1764633600,
      rxBytes: 1480,
      txBytes: 2960,
    });
    assert.equal(matchesPlan(shown, tunnel, mine.publicKey), true);
    assert.equal(
      matchesPlan(shown, { ...tunnel, peer: { ...tunnel.peer, publicKey: mine.publicKey } }, mine.publicKey),
      false,
    );
    assert.equal(
      matchesPlan(shown, { ...tunnel, peer: { ...tunnel.peer, allowedIPs: ["10.96.0.0/12"] } }, mine.publicKey),
      false,
    );
    const fresh = parseDump(
      `${mine.privateKey}\t${mine.publicKey}\t0\toff\n${PEER}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`,
    );
    assert.equal(fresh?.peers[0]?.latestHandshake, undefined);
    assert.equal(fresh?.peers[0]?.endpoint, undefined);
    assert.equal(parseDump(""), undefined);
  });

  it("derives the public key as `wg pubkey` does", { skip: haveWg ? false : "wg not installed" }, () => {
    const key = generateOverlayKey();
    const fromWg = execFileSync("wg", ["pubkey"], { input: `${key.privateKey}\n` })
      .toString()
      .trim();
    assert.equal(key.publicKey, fromWg);
    assert.equal(publicKeyOf(key.privateKey), fromWg);
  });

  it("makes the key file once, 0600, and refuses one that is world-readable or corrupt", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "overlay-key-"));
    try {
      const file = path.join(dir, "overlay", "wireguard.key");
      const made = await loadOrCreateOverlayKey(file);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.deepEqual(await loadOrCreateOverlayKey(file), made);
      await chmod(file, 0o644);
      await assert.rejects(loadOrCreateOverlayKey(file), /readable by other users .*chmod 600/);
      await chmod(file, 0o600);
      await writeFile(file, "garbage\n");
      await assert.rejects(loadOrCreateOverlayKey(file), /does not hold a WireGuard private key/);
      assert.equal(await readFile(file, "utf8"), "garbage\n");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
