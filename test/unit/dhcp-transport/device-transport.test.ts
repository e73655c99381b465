import assert from "node:assert/strict";
import dgram from "node:dgram";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { DeviceTransport, interfaceOwning } from "../../../server/dhcp/transport/device-transport.js";
import { defaultAddonCandidates } from "../../../server/dhcp/transport/native-addon.js";
import type { ReceivedDatagram } from "../../../server/dhcp/transport.js";

const builtAddon = defaultAddonCandidates().find((candidate) => existsSync(candidate));
const loopback = interfaceOwning("127.0.0.1") ?? "lo";

test("constructing a DeviceTransport does not load the addon", () => {
  const transport = new DeviceTransport({ interfaceName: "eth0", addonPath: "/nonexistent/addon.node" });
  assert.equal(transport.description, "device eth0 :67");
});

test("start rejects with an operator-readable error when the addon is missing", async () => {
  const transport = new DeviceTransport({ interfaceName: "eth0", addonPath: "/nonexistent/metalman_dhcp_socket.node" });
  await assert.rejects(
    transport.start(() => {}),
    (error: Error) => {
      assert.match(error.message, /native socket addon/);
      assert.match(error.message, /\/nonexistent\/metalman_dhcp_socket\.node/);
      assert.match(error.message, /npm rebuild/);
      assert.match(error.message, /[Rr]elay-mode DHCP .* works without it/);
      return true;
    },
  );
  await transport.close();
});

test("start rejects with the load failure when the addon file is not a loadable module", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "mm-addon-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const broken = path.join(dir, "metalman_dhcp_socket.node");
  writeFileSync(broken, "not an ELF file");
  const transport = new DeviceTransport({ interfaceName: "eth0", addonPath: broken });
  await assert.rejects(
    transport.start(() => {}),
    /did not load .*npm rebuild/s,
  );
});

test("send before start rejects", async () => {
  const transport = new DeviceTransport({ interfaceName: "eth0", addonPath: "/nonexistent/x.node" });
  await assert.rejects(transport.send(Buffer.from("x"), "127.0.0.1", 9), /before start/);
});

/** Skip reason for the tests that open a real device socket, or undefined when they can run. */
async function deviceSocketSkipReason(): Promise<string | undefined> {
  if (!builtAddon) return "native addon not built (npx node-gyp rebuild --directory=server/native)";
  const probe = new DeviceTransport({ interfaceName: loopback, port: 0 });
  try {
    await probe.start(() => {});
    return undefined;
  } catch (error) {
    return `cannot open a device socket here (${(error as Error).message})`;
  } finally {
    await probe.close();
  }
}

test("DeviceTransport on the loopback device round-trips and reports the interface", async (t) => {
  const skip = await deviceSocketSkipReason();
  if (skip) return t.skip(skip);
  const transport = new DeviceTransport({ interfaceName: loopback, port: 0 });
  const client = dgram.createSocket("udp4");
  after(async () => {
    await transport.close();
    client.close();
  });
  const received: ReceivedDatagram[] = [];
  let notify: (() => void) | undefined;
  await transport.start((datagram) => {
    received.push(datagram);
    notify?.();
  });
  const port = transport.localPort!;
  assert.ok(port > 0);
  await new Promise<void>((resolve) => client.bind(0, "127.0.0.1", resolve));

  const arrived = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("nothing received within 2 s")), 2000);
    notify = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  client.send(Buffer.from("discover"), port, "127.0.0.1");
  await arrived;
  const [request] = received;
  assert.equal(request.data.toString(), "discover");
  assert.equal(request.address, "127.0.0.1");
  assert.equal(request.port, client.address().port);
  assert.equal(request.interfaceName, loopback);
  assert.equal(request.interfaceIndex, transport.interfaceIndex);

  const reply = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no reply within 2 s")), 2000);
    client.once("message", (message) => {
      clearTimeout(timer);
      resolve(message);
    });
  });
  await transport.send(Buffer.from("offer"), request.address, request.port);
  assert.equal((await reply).toString(), "offer");
});

test("DeviceTransport errors carry the errno code", async (t) => {
  const skip = await deviceSocketSkipReason();
  if (skip) return t.skip(skip);
  const missing = new DeviceTransport({ interfaceName: "mmt-nonexist0", port: 0 });
  await assert.rejects(
    missing.start(() => {}),
    (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, "ENODEV");
      assert.match(error.message, /mmt-nonexist0/);
      return true;
    },
  );

  const transport = new DeviceTransport({ interfaceName: loopback, port: 0 });
  after(() => transport.close());
  await transport.start(() => {});
  await assert.rejects(transport.send(Buffer.from("x"), "not-an-ip", 68), { code: "ERR_INVALID_IP_ADDRESS" });
  await transport.close();
  await assert.rejects(transport.send(Buffer.from("x"), "127.0.0.1", 68), /before start/);
});
