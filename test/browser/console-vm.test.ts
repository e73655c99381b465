/**
 * Issue 8 proofs with real machines behind the console (Chromium through playwright-core, the
 * appliance with its console listener, inside network namespace "cu<pid>"):
 * - an operator clicks Repave on a Machine whose BMC is the emulator backed by a qemu VM
 *   (SeaBIOS + iPXE, a disk that only halts comes first), confirms, and sees live in the
 *   timeline, without a reload: the BMC's one-time PXE override and power cycle, the PXE boot
 *   of the lab payload (DHCP, HTTP), /pxe/disable, then the condition Repaved=True;
 * - a server unknown to the appliance DHCPs (busybox udhcpc, a second namespace on the same
 *   bridge): it gets no lease and shows under Discovered; one click on Enroll, and its next
 *   DHCP DISCOVER gets a lease.
 * One VM boot serves the whole file (the CI budget). Before the change there was no console:
 * every step fails.
 */
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { runUdhcpc } from "../lab/harness.js";
import { repoRoot, sharedDir } from "../support/paths.js";
import {
  BMC_VM_COMMANDS,
  haltDiskVmArgs,
  netnsDown,
  netnsUp,
  prepareBmcVmWork,
  removeBmcVmWork,
  startBmcVmHelper,
} from "../vm/bmc-vm.js";
import { type LoggedProcess, missingPrerequisites, run, waitUntil } from "../vm/harness.js";
import { addTap } from "../vm/repave-vm.js";
import { type Browser, CHROMIUM, launchBrowser } from "./support/browser.js";
import { apiAddUser, apiLogin, type ConsoleBanner, parseConsoleBanner } from "./support/console-appliance.js";
import { testOutputDir } from "./support/output.js";
import { shoot } from "./support/screenshots.js";

const NS = `cu${process.pid}`;
const CLIENT_NS = `cu${process.pid}c`;
const SERVER_IP = "10.79.0.1";
const BRIDGE = "br0";
const TAP = "cutap0";
const CLIENT_IF = "cucli0";
const PORTS = { http: 15221, health: 15222, bmc: 15223, console: 15224 };
const VM = { name: "rack1-node-07", mac: "52:54:00:79:00:11", ipv4: "10.79.0.11" };
const STRANGER = { mac: "52:54:00:79:00:99", ipv4: "10.79.0.50", name: "enrolled-01" };
const PASSWORD = "console-Bmc-Pa55";
const OPERATOR = { name: "olga", role: "operator", password: "operator-Pa55word" };

const root = repoRoot();
const lab = path.join(sharedDir(), "lab");
const helper = path.join(root, "dist", "test", "browser", "support", "vm-console-appliance.js");
const missing = missingPrerequisites(
  [...BMC_VM_COMMANDS, "busybox"],
  [
    CHROMIUM,
    path.join(lab, "vm-netns.sh"),
    helper,
    path.join(root, "server", "native", "build", "Release", "metalman_dhcp_socket.node"),
  ],
);
const skip = process.env.CI !== "true" && missing.length > 0 ? `missing: ${missing.join(", ")}` : false;

function machineYaml(imageDir: string): string {
  return `# The lab's VM, behind the emulated BMC.
apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: ${VM.name}
  labels: {rack: lab-1}
spec:
  pxe:
    image: "dir:${imageDir}"
    dhcpLeases:
    - {mac: "${VM.mac}", ipv4: "${VM.ipv4}", subnetMask: "255.255.255.0", gateway: "${SERVER_IP}", dns: ["${SERVER_IP}"]}
    redfish:
      url: https://${SERVER_IP}:${PORTS.bmc}
      username: admin
      passwordRef: {name: ${VM.name}-bmc, namespace: default, key: password}
`;
}

describe("console with a VM-backed BMC and a real DHCP client (QEMU TCG)", { skip, timeout: 600_000 }, () => {
  let work = "";
  let imageDir = "";
  let nsUp = false;
  let clientNsUp = false;
  let server: LoggedProcess | undefined;
  let banner: ConsoleBanner;
  let browser: Browser | undefined;
  let operator: BrowserContext | undefined;
  let page: Page;
  const out = testOutputDir("console-vm");
  const started = Date.now();

  before(async () => {
    assert.deepEqual(missing, [], `prerequisites missing (CI=true): ${missing.join(", ")}`);
    const prepared = prepareBmcVmWork("metalman-console-vm-", PORTS.http);
    ({ work, imageDir } = prepared);
    writeFileSync(path.join(prepared.inventory, `${VM.name}.yaml`), machineYaml(imageDir));
    netnsUp(NS, BRIDGE, `${SERVER_IP}/24`);
    nsUp = true;
    addTap(NS, TAP, BRIDGE);
    // The stranger: a veth on the bridge whose far end lives in a namespace of its own.
    run(path.join(lab, "vm-netns.sh"), ["veth", NS, CLIENT_IF, BRIDGE]);
    run("ip", ["netns", "add", CLIENT_NS]);
    clientNsUp = true;
    run("ip", ["-n", NS, "link", "set", CLIENT_IF, "netns", CLIENT_NS]);
    run("ip", ["-n", CLIENT_NS, "link", "set", CLIENT_IF, "address", STRANGER.mac]);
    run("ip", ["-n", CLIENT_NS, "link", "set", CLIENT_IF, "up"]);
    run("ip", ["-n", CLIENT_NS, "link", "set", "lo", "up"]);

    server = startBmcVmHelper({
      ns: NS,
      helper,
      serverIp: SERVER_IP,
      bridge: BRIDGE,
      ports: PORTS,
      work: prepared,
      qemuArgs: haltDiskVmArgs(work, TAP, VM.mac),
      password: PASSWORD,
      extra: ["--console-address", "127.0.0.1", "--console-port", String(PORTS.console)],
    });
    const ready = await waitUntil(
      () => !server?.running || server.lines.some((l) => l.includes("vm-console-appliance: ready")),
      60_000,
    );
    assert.ok(ready && server.running, `helper did not start:\n${server.tail()}`);
    const parsed = parseConsoleBanner(server.lines.join("\n"));
    assert.ok(parsed?.admin, `no console banner with a first admin:\n${server.tail()}`);
    banner = parsed;
    // The browser runs inside the namespace too: the console listens on its loopback.
    const wrapper = path.join(work, "chromium-in-netns.sh");
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${NS} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    browser = await launchBrowser({ executablePath: wrapper });
    await browser.page.goto(banner.url);
    const csrf = await apiLogin(browser.page, banner.admin!.name, banner.admin!.password);
    await apiAddUser(browser.page, csrf, OPERATOR);
    operator = await browser.newIsolatedContext();
    page = await operator.newPage();
    await page.goto(banner.url);
    await page.getByLabel("User name").fill(OPERATOR.name);
    await page.getByLabel("Password").fill(OPERATOR.password);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByTestId("whoami").waitFor({ timeout: 15_000 });
  });

  after(async () => {
    await operator?.close().catch(() => undefined);
    await browser?.close();
    await server?.stop();
    if (clientNsUp) run("ip", ["netns", "del", CLIENT_NS]);
    if (nsUp) netnsDown(NS);
    removeBmcVmWork(work);
    console.log(`# console-vm wall time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  it("an operator clicks Repave, confirms naming the Machine, and the BMC power-cycles the VM live", async () => {
    await page.goto(`${banner.url}#/machines/${VM.name}`);
    await page.getByTestId("machine-name").waitFor();
    // A marker that a reload would lose: everything below must arrive live.
    await page.evaluate("window.__noReload = true");
    await page.getByRole("button", { name: "Repave", exact: true }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? "", new RegExp(`Repave ${VM.name}\\?`));
    await dialog.getByRole("button", { name: `Repave ${VM.name}` }).click();
    await page.locator('li[data-step="bmc.set-boot-override"][data-result="ok"]').first().waitFor({ timeout: 90_000 });
    await page.locator('li[data-step="bmc.power"][data-result="ok"]').first().waitFor({ timeout: 90_000 });
  });

  it("an unknown server's DHCP shows under Discovered; Enroll gives its next DISCOVER a lease", async () => {
    const first = await runUdhcpc({ ns: CLIENT_NS, dev: CLIENT_IF, scratchDir: work, tries: 2, timeoutMs: 20_000 });
    assert.equal(first.ok, false, `a stranger got a lease before enrollment: ${first.output}`);
    const discovered = await operator!.newPage();
    try {
      await discovered.goto(`${banner.url}#/discovered`);
      const row = discovered.locator(`tr[data-mac="${STRANGER.mac}"]`);
      await row.waitFor({ timeout: 30_000 });
      await row.getByRole("button", { name: "Enroll" }).click();
      await discovered.getByLabel("Machine name").fill(STRANGER.name);
      await discovered.getByLabel("Lease IPv4").fill(STRANGER.ipv4);
      // Gateway and mask come prefilled from the appliance's own DHCP address and interface.
      // A function, not a string: the console's CSP forbids eval, which string predicates use.
      await discovered.waitForFunction(
        (gateway: string) => {
          const doc = (globalThis as unknown as { document: { querySelector(s: string): { value?: string } | null } })
            .document;
          return (
            doc.querySelector("#en-gw")?.value === gateway && doc.querySelector("#en-mask")?.value === "255.255.255.0"
          );
        },
        SERVER_IP,
        { timeout: 10_000 },
      );
      await discovered.getByRole("button", { name: `Enroll ${STRANGER.mac}` }).click();
      await discovered.getByTestId("enroll-notice").waitFor({ timeout: 15_000 });
    } finally {
      await discovered.close();
    }
    const lease = await waitUntilLease(work);
    assert.equal(lease.ip, STRANGER.ipv4, lease.output);
  });

  it("the timeline shows the PXE boot of the lab payload, /pxe/disable and Repaved=True, without a reload", async () => {
    await page.locator('li[data-step="pxe.disable"][data-result="ok"]').first().waitFor({ timeout: 420_000 });
    await page
      .locator('[data-testid="condition-Repaved"][data-status="True"]')
      .waitFor({ timeout: 60_000 })
      .catch(async (error) => {
        const serial = readFileSync(path.join(work, "serial.log"), "latin1").slice(-1500);
        throw new Error(`${error}\n${server?.tail(30)}\n--- serial ---\n${serial}`);
      });
    assert.equal(await page.evaluate("window.__noReload === true"), true, "the page was not reloaded");
    const steps = await page
      .locator("li[data-step]")
      .evaluateAll((items) =>
        items.map((item) => `${item.getAttribute("data-step")} ${item.getAttribute("data-result")}`),
      );
    for (const step of ["bmc.power ok", "dhcp.offer ok", "dhcp.ack ok", "pxe.disable ok"]) {
      assert.ok(steps.includes(step), `${step} missing from the timeline: ${steps.join(", ")}`);
    }
    assert.ok(
      steps.some((s) => /^(http\.artifact|http\.template|tftp\.transfer) ok$/.test(s)),
      `no file served in the timeline: ${steps.join(", ")}`,
    );
    for (const theme of ["light", "dark"]) {
      await page.evaluate(`localStorage.setItem("metalman.theme", ${JSON.stringify(theme)})`);
      await page.reload();
      await page.locator('li[data-step="pxe.disable"]').first().waitFor();
      // Tall enough to show the attempt from the request to /pxe/disable (the docs use it).
      await page.setViewportSize({ width: 1440, height: 2100 });
      await shoot(page, path.join(out, `timeline-${theme}.png`));
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.goto(`${banner.url}#/machines`);
      await page.locator(`tr[data-machine="${STRANGER.name}"]`).waitFor();
      await shoot(page, path.join(out, `machines-${theme}.png`));
      await page.goto(`${banner.url}#/machines/${VM.name}`);
    }
  });
});

/** udhcpc again until the enrolled Machine's lease comes (the inventory watch may take a moment). */
async function waitUntilLease(scratchDir: string) {
  let last = await runUdhcpc({ ns: CLIENT_NS, dev: CLIENT_IF, scratchDir, tries: 3, timeoutMs: 25_000 });
  for (let i = 0; i < 3 && !last.ok; i++) {
    last = await runUdhcpc({ ns: CLIENT_NS, dev: CLIENT_IF, scratchDir, tries: 3, timeoutMs: 25_000 });
  }
  return last;
}
