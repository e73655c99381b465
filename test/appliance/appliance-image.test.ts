import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { after, before, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { hashPassword } from "../../server/console/password-hash.js";
import { launchBrowser } from "../browser/support/browser.js";
import { labDir, labSuite } from "../lab/harness.js";
import { repoRoot } from "../support/paths.js";
import {
  ApplianceVm,
  CLIENT_IF,
  CLIENT_IP,
  CLIENT_MAC,
  inNs,
  LoopDisk,
  MGMT_APPLIANCE,
  MGMT_MAC,
  NS,
  netnsDown,
  netnsUp,
  PROV_APPLIANCE,
  PROV_BRIDGE,
  PROV_MAC,
  sh,
  shQuiet,
} from "./appliance-vm.js";

/**
 * The appliance image end to end (issue 11): build/appliance/build.sh makes the image; the disk is
 * flashed with bmaptool, its GPT and filesystems checked through a loop device, appliance.yaml and a
 * two Machines and the console's admin password hash pre-seeded on its config partition, the lab
 * payload on its data partition, and the disk made 4 GiB larger than the image (sparse); QEMU (OVMF, TCG)
 * boots it with a management and a provisioning NIC in namespace ap-vm. Then: metalman.service
 * active and healthy on the management address, DHCP and TFTP answered on the provisioning NIC
 * (busybox udhcpc, tftp-hpa), the banner with the URL; the console over HTTPS with the fingerprint
 * the text console shows, and Chromium (Playwright) logs in with the pre-seeded password; a second,
 * blank VM (SeaBIOS + iPXE) PXE-boots the lab payload through the provisioning NIC; state on the
 * data partition, grown to the disk's end; a reboot keeps it all; an update bundle uploaded to the
 * running appliance's console API goes into slot B, which boots, is blessed and keeps the state; a
 * broken version in slot A (written offline) rolls back to B by itself.
 */

const BUILD_TIMEOUT_MS = 15 * 60_000;
const BOOT_TIMEOUT_MS = 6 * 60_000;
const V1 = "0.1.0-t1";
const V2 = "0.1.0-t2";
const V3 = "0.1.0-t3";
/** The console's first admin password: appliance.yaml carries only its hash (admin.passwordHash). */
const ADMIN_PASSWORD = "rack-a admin pass phrase";
/** The blank VM on the provisioning bridge (SeaBIOS + iPXE ROM), and the Machine it is. */
const BLANK_VM = { name: "node-02", mac: "52:54:00:a1:57:65", ip: "10.157.0.101" };
/** The disk the image is flashed on is this much larger than the image: mm-data takes it at first boot. */
const DISK_GROWTH_MIB = 4096;
/** The HTTP status of a GET from inside the test's namespace (curl, 10 s). */
function httpStatus(url: string): { status: number | null; out: string } {
  return inNs("curl", ["-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", url]);
}

/** A partition's size in MiB, from the GPT (partx reads the table itself). */
function partitionMiB(loop: LoopDisk, label: string): number {
  for (const line of sh("partx", ["-g", "-b", "-o", "NAME,SIZE", loop.device]).split("\n")) {
    const [name, bytes] = line.trim().split(/\s+/);
    if (name === label) return Math.floor(Number(bytes) / 1024 / 1024);
  }
  throw new Error(`no partition ${label}`);
}

/**
 * Every step runs, in CI too: the whole suite took 14 minutes in a clean-clone CI run (a TCG boot of the appliance
 * is about a minute now). METALMAN_APPLIANCE_FAST=1 skips the upgrade and the rollback (three more
 * boots) for a quick local run.
 */
const FULL = process.env.METALMAN_APPLIANCE_FAST !== "1";
const FULL_ONLY = FULL ? false : "METALMAN_APPLIANCE_FAST=1: upgrade and rollback skipped";

labSuite(
  "appliance image: build, flash, boot, serve, upgrade, rollback",
  [
    "qemu-system-x86_64",
    "mmdebstrap",
    "sfdisk",
    "partx",
    "bmaptool",
    "mcopy",
    "losetup",
    "e2fsck",
    "fsck.vfat",
    "busybox",
    "tftp",
    "qemu-img",
    "curl",
    "chromium",
  ],
  () => {
    const scratch = mkdtempSync("/tmp/ap-image-");
    const out = path.join(scratch, "out");
    const disk = path.join(scratch, "disk.img");
    const vars = path.join(scratch, "OVMF_VARS.fd");
    const mnt = path.join(scratch, "mnt");
    mkdirSync(mnt);
    const name = `metalman-appliance-${V1}`;
    const labImageParent = path.join(scratch, "lab-test");
    let dataMiB = 0;
    let vm: ApplianceVm | undefined;

    before(() => netnsUp());
    after(async () => {
      if (vm) await vm.powerOff(30_000);
      netnsDown();
      shQuiet("umount", [mnt]);
      if (process.env.METALMAN_KEEP_APPLIANCE_TEST !== "1") rmSync(scratch, { recursive: true, force: true });
    });

    const withDisk = <T>(body: (loop: LoopDisk) => T): T => {
      const loop = new LoopDisk(disk);
      try {
        return body(loop);
      } finally {
        loop.close();
      }
    };
    const boot = async (label: string) => {
      vm = new ApplianceVm(disk, vars, scratch, label, { noReboot: true });
      return vm;
    };
    /** The guest rebooted itself (QEMU -no-reboot exits): power it on again, as a fresh QEMU. */
    const afterReboot = async (v: ApplianceVm, label: string, timeoutMs: number) => {
      const timer = new AbortController(); // cancelled at once: a pending timer would hold the test process
      const exited = await Promise.race([
        v.exited().then(() => true),
        sleep(timeoutMs, undefined, { signal: timer.signal }).then(
          () => false,
          () => false,
        ),
      ]);
      timer.abort();
      assert.ok(exited, `the appliance did not reboot within ${timeoutMs} ms:\n${v.serial().slice(-3000)}`);
      return boot(label);
    };
    const off = async () => {
      await vm?.powerOff();
      vm = undefined;
    };
    const slots = () => sh(path.join(repoRoot(), "appliance/bin/metalman-upgrade"), ["--image", disk, "--status"]);

    it("build.sh makes the image, its qcow2, bmap, update bundle and a manifest with versions and sha256", () => {
      const started = Date.now();
      sh(
        "bash",
        [
          path.join(repoRoot(), "build/appliance/build.sh"),
          "--no-build",
          "--out",
          out,
          "--version",
          V1,
          "--keep-rootfs",
        ],
        BUILD_TIMEOUT_MS,
      );
      process.stdout.write(`# appliance build: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
      for (const ext of ["img", "qcow2", "bmap", "update.tar", "manifest.json"]) {
        assert.ok(existsSync(path.join(out, `${name}.${ext}`)), `${name}.${ext} exists`);
      }
      const manifest = JSON.parse(readFileSync(path.join(out, `${name}.manifest.json`), "utf8"));
      assert.equal(manifest.version, V1);
      assert.match(manifest.node, /^v(2\d|[3-9]\d)\./, "node >= 20");
      assert.match(manifest.kernel, /amd64$/);
      assert.ok(manifest.packages.some((p: string) => p.startsWith("wireguard-tools=")));
      const bundleSha = sh("sha256sum", [path.join(out, `${name}.update.tar`)]).split(" ")[0];
      assert.equal(manifest.files[`${name}.update.tar`].sha256, bundleSha);
      assert.match(sh("qemu-img", ["info", path.join(out, `${name}.qcow2`)]), /file format: qcow2/);
    });

    it("flashes with bmaptool; the kernel sees the GPT (5 named partitions) and every filesystem checks clean", async () => {
      const adminHash = await hashPassword(ADMIN_PASSWORD);
      // The blank VM's payload (netboot-images/lab-test: the same one test/vm boots).
      sh(
        "bash",
        [path.join(repoRoot(), "netboot-images/lab-test/build.sh"), labImageParent, "--http-port", "8880"],
        300_000,
      );
      sh("bmaptool", ["copy", "--bmap", path.join(out, `${name}.bmap`), path.join(out, `${name}.img`), disk], 300_000);
      assert.match(sh("sfdisk", ["--verify", disk]), /No errors detected/);
      withDisk((loop) => {
        assert.deepEqual(loop.labels(), ["mm-esp", "mm-root-a", "mm-root-b", "mm-config", "mm-data"]);
        sh("fsck.vfat", ["-n", loop.partition("mm-esp")]);
        sh("fsck.vfat", ["-n", loop.partition("mm-config")]);
        sh("e2fsck", ["-fn", loop.partition("mm-root-a")]);
        sh("e2fsck", ["-fn", loop.partition("mm-data")]);
        // Pre-seed the config partition as an operator would (mtools: FAT without a kernel driver).
        const seed = path.join(scratch, "seed");
        mkdirSync(seed);
        writeFileSync(
          path.join(seed, "appliance.yaml"),
          [
            "site: rack-a",
            "interfaces:",
            `  management: {mac: "${MGMT_MAC}", address: ${MGMT_APPLIANCE}/24}`,
            `  provisioning: {mac: "${PROV_MAC}", address: ${PROV_APPLIANCE}/24}`,
            `admin: {passwordHash: "${adminHash}"}`,
            // One wrong setting: the text console and the console's pages name it, and the rest runs.
            "colour: blue",
            "",
          ].join("\n"),
        );
        writeFileSync(
          path.join(seed, "node-01.yaml"),
          [
            "apiVersion: unbounded-cloud.io/v1alpha3",
            "kind: Machine",
            "metadata: {name: node-01, labels: {unbounded-cloud.io/site: rack-a}}",
            "spec:",
            "  pxe:",
            "    image: dir:/usr/share/metalman/images/host-ubuntu2404",
            `    dhcpLeases: [{mac: "${CLIENT_MAC}", ipv4: ${CLIENT_IP}, subnetMask: 255.255.255.0, gateway: ${PROV_APPLIANCE}}]`,
            "  operations: {repaveCounter: 1}",
            "",
          ].join("\n"),
        );
        writeFileSync(
          path.join(seed, "node-02.yaml"),
          [
            "apiVersion: unbounded-cloud.io/v1alpha3",
            "kind: Machine",
            `metadata: {name: ${BLANK_VM.name}, labels: {unbounded-cloud.io/site: rack-a}}`,
            "spec:",
            "  pxe:",
            "    image: dir:/var/lib/metalman/images/lab-test",
            `    dhcpLeases: [{mac: "${BLANK_VM.mac}", ipv4: ${BLANK_VM.ip}, subnetMask: 255.255.255.0, gateway: ${PROV_APPLIANCE}}]`,
            "  operations: {repaveCounter: 1}",
            "",
          ].join("\n"),
        );
        const config = loop.partition("mm-config");
        sh("mcopy", ["-o", "-i", config, path.join(seed, "appliance.yaml"), "::/appliance.yaml"]);
        sh("mmd", ["-i", config, "::/machines"]);
        for (const machine of ["node-01", "node-02"]) {
          sh("mcopy", ["-o", "-i", config, path.join(seed, `${machine}.yaml`), `::/machines/${machine}.yaml`]);
        }
        assert.match(sh("mdir", ["-b", "-i", config, "::/machines"]), /node-01\.yaml/);
        // The lab payload as an image folder on the data partition (images/ is on serve-pxe's --image-root).
        loop.withMount(
          "mm-data",
          mnt,
          (dir) => {
            const images = path.join(dir, "metalman", "images");
            mkdirSync(images, { recursive: true });
            sh("cp", ["-a", labImageParent, path.join(images, "lab-test")]);
          },
          true,
        );
        dataMiB = partitionMiB(loop, "mm-data");
      });
      // A disk larger than the image, as a jump box's is.
      sh("truncate", ["-s", `+${DISK_GROWTH_MIB}M`, disk]);
      assert.match(slots(), new RegExp(`slot a version ${V1} good`));
    });

    it("boots (UEFI, TCG): metalman active, healthy on the management NIC, DHCP+TFTP on the provisioning NIC, banner with the URL", async () => {
      const started = Date.now();
      const v = await boot("boot1");
      const banner = await v.waitSerial(
        /metalman-banner: version=(\S+) slot=(\S) service=(\S+) health=(\S+)/,
        BOOT_TIMEOUT_MS,
      );
      process.stdout.write(`# boot to healthy: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
      assert.deepEqual(banner.slice(1), [V1, "a", "active", "ok"], "metalman.service active and healthy");
      assert.match(banner.input ?? "", /errors=1\b/, "the wrong setting is counted, and metalman runs anyway");
      // The login prompt's banner (/etc/issue) names the health URL on the management address.
      await v.waitSerial(
        new RegExp(`health: +http://${MGMT_APPLIANCE.replaceAll(".", "\\.")}:8081/readyz \\(ok\\)`),
        120_000,
      );
      assert.match(v.serial(), /Reached target multi-user\.target|Reached target .*Multi-User/);
      assert.match(
        v.serial(),
        /appliance\.yaml has 1 error\(s\)[^\n]*\n\s+- colour: /,
        "the text console names the wrong setting",
      );
      const health = httpStatus(`http://${MGMT_APPLIANCE}:8081/healthz`);
      assert.equal(health.out, "200", "health answers on the management address");
      // DHCP on the provisioning NIC: busybox udhcpc gets the Machine's lease from metalman.
      const script = path.join(scratch, "udhcpc.sh");
      writeFileSync(
        script,
        '#!/bin/sh\n[ "$1" = bound ] || exit 0\necho "LEASE ip=$ip siaddr=$siaddr serverid=$serverid boot_file=$boot_file"\nip addr add "$ip/$mask" dev "$interface"\n',
        { mode: 0o755 },
      );
      const dhcp = inNs(
        "busybox",
        [
          "udhcpc",
          "-i",
          CLIENT_IF,
          "-f",
          "-q",
          "-n",
          "-t",
          "10",
          "-T",
          "3",
          "-s",
          script,
          "-V",
          "PXEClient:Arch:00007:UNDI:003000",
          "-x",
          "0x5d:0007",
          "-O",
          "67",
        ],
        90_000,
      );
      assert.match(
        dhcp.out,
        new RegExp(`LEASE ip=${CLIENT_IP.replaceAll(".", "\\.")} .*serverid=${PROV_APPLIANCE.replaceAll(".", "\\.")}`),
        dhcp.out,
      );
      // TFTP from the lease address: the Machine's rendered GRUB menu.
      const tftpFile = path.join(scratch, "grub.cfg");
      const tftp = inNs("tftp", [PROV_APPLIANCE, "-v", "-c", "get", "grub/grub.cfg", tftpFile], 60_000);
      assert.ok(existsSync(tftpFile) && statSync(tftpFile).size > 0, `TFTP transfer: ${tftp.out}`);
      assert.match(readFileSync(tftpFile, "utf8"), /menuentry/);
    });

    it("the console answers HTTPS on the management address with the certificate the text console shows; Playwright logs in", async () => {
      assert.ok(vm, "the appliance is running");
      const url = `https://${MGMT_APPLIANCE}:8443/`;
      const shown = await vm.waitSerial(/TLS SHA-256: +([0-9A-F]{2}(?::[0-9A-F]{2}){31})/, 180_000);
      const served = inNs("sh", [
        "-c",
        `openssl s_client -connect ${MGMT_APPLIANCE}:8443 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`,
      ]);
      assert.equal(served.out.trim().split("=")[1], shown[1], "the fingerprint on the text console is the one served");
      // Chromium in the test's namespace (the management bridge lives there), driven over its pipe.
      const wrapper = path.join(scratch, "chromium-in-netns");
      writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${NS} /usr/bin/chromium "$@"\n`, { mode: 0o755 });
      const browser = await launchBrowser({ executablePath: wrapper });
      try {
        const { page } = browser;
        await page.goto(url, { timeout: 60_000 });
        await page.getByLabel("User name").fill("admin");
        await page.getByLabel("Password").fill(ADMIN_PASSWORD);
        await page.getByRole("button", { name: "Log in" }).click();
        await page.getByTestId("whoami").waitFor({ timeout: 60_000 });
        assert.match((await page.getByTestId("whoami").textContent()) ?? "", /admin/);
        // The seeded Machines are listed (the console reads the appliance's inventory).
        await page.getByText("node-02").first().waitFor({ timeout: 60_000 });
        // The first page after login says appliance.yaml has an error; the Appliance page names it.
        await page.getByTestId("config-banner").waitFor({ timeout: 30_000 });
        await page.screenshot({ path: path.join(scratch, "appliance-console.png") });
        await page.getByRole("link", { name: "See the Appliance page" }).click();
        const errors = page.getByTestId("config-errors");
        await errors.waitFor({ timeout: 30_000 });
        assert.match((await errors.textContent()) ?? "", /colour/);
        assert.match((await page.getByTestId("appliance-config").textContent()) ?? "", /1 error/);
        assert.match((await page.locator(".facts").first().textContent()) ?? "", new RegExp(`${V1} \\(root slot A\\)`));
        // An admin gets the Upgrade panel (the appliance has an upgrade spool).
        await page.getByTestId("appliance-upgrade").waitFor({ timeout: 30_000 });
        await page.screenshot({ path: path.join(scratch, "appliance-page.png"), fullPage: true });
      } finally {
        await browser.close();
      }
    });

    it("a second, blank VM on the provisioning bridge PXE-boots the lab payload from the appliance (SeaBIOS + iPXE)", async () => {
      assert.ok(vm, "the appliance is running");
      const serial = path.join(scratch, "blank-vm.serial.log");
      const boot = shQuiet(
        path.join(labDir(), "pxe-vm.sh"),
        [
          "bios",
          PROV_APPLIANCE,
          PROV_BRIDGE,
          serial,
          "--netns",
          NS,
          "--mac",
          BLANK_VM.mac,
          "--wait",
          "LAB-PXE-MARKER (done|no-nic)",
          "--timeout",
          "420",
        ],
        450_000,
      );
      const log = existsSync(serial) ? readFileSync(serial, "latin1") : "";
      assert.equal(boot.status, 0, `pxe-vm.sh: ${boot.out}\n--- serial ---\n${log.slice(-3000)}`);
      process.stdout.write(`# blank VM: ${/elapsed=(\S+)/.exec(boot.out)?.[1] ?? "?"} to LAB-PXE-MARKER done\n`);
      assert.match(log, /lab: boot\.ipxe rendered for machine=node-02/, "boot.ipxe rendered for the Machine");
      const callback = /LAB-PXE-MARKER callback-ok url=(\S+)/.exec(log)?.[1] ?? "";
      assert.ok(
        callback.startsWith(`http://${PROV_APPLIANCE}:8880/pxe/disable?machine=${BLANK_VM.name}&`),
        `the payload called the appliance back: ${callback}\n${log.slice(-2000)}`,
      );
      assert.match(log, /LAB-PXE-MARKER done/);
    });

    const bootedState = (dir: string) => {
      const state = path.join(dir, "metalman", "state");
      assert.ok(existsSync(state), "state dir on the data partition");
      for (const machine of ["node-01", "node-02"]) {
        assert.ok(existsSync(path.join(dir, "metalman", "machines", `${machine}.yaml`)), `${machine} in the inventory`);
      }
      const status = JSON.parse(readFileSync(path.join(state, "status", "node-02.json"), "utf8")) as {
        status?: { operations?: { repaveCounter?: number } };
      };
      assert.equal(status.status?.operations?.repaveCounter, 1, "the blank VM's repave is recorded");
      return readFileSync(path.join(state, "status", "node-01.json"), "utf8");
    };

    it("state is on the data partition, which grew to the end of the larger disk", async () => {
      await off();
      withDisk((loop) => {
        const grown = partitionMiB(loop, "mm-data");
        assert.ok(
          grown >= dataMiB + DISK_GROWTH_MIB - 2,
          `mm-data grew from ${dataMiB} MiB by the disk's ${DISK_GROWTH_MIB} MiB (now ${grown} MiB)`,
        );
        assert.match(sh("sfdisk", ["--verify", disk]), /No errors detected/, "backup GPT moved to the new end");
        sh("e2fsck", ["-fn", loop.partition("mm-data")]);
        const blocks = /Block count:\s+(\d+)/.exec(sh("dumpe2fs", ["-h", loop.partition("mm-data")]));
        const fsMiB = (Number(blocks?.[1]) * 4096) / 1024 / 1024;
        assert.ok(fsMiB >= grown - 8, `ext4 grew with it (${fsMiB.toFixed(0)} of ${grown} MiB)`);
        loop.withMount("mm-data", mnt, (dir) => {
          assert.ok(readdirSync(path.join(dir, "journal")).length > 0, "journal on the data partition");
          writeFileSync(path.join(scratch, "status-v1.json"), bootedState(dir));
        });
      });
    });

    it("after a reboot the appliance serves again, and inventory and state survive", async () => {
      const v = await boot("boot1b");
      const banner = await v.waitSerial(
        /metalman-banner: version=(\S+) slot=(\S) service=(\S+) health=(\S+)/,
        BOOT_TIMEOUT_MS,
      );
      assert.deepEqual(banner.slice(1), [V1, "a", "active", "ok"]);
      const ready = httpStatus(`http://${MGMT_APPLIANCE}:8081/readyz`);
      assert.equal(ready.out, "200", "ready: inventory valid, no quarantined state");
      await off();
      withDisk((loop) =>
        loop.withMount("mm-data", mnt, (dir) => {
          type Status = { status?: { operations?: unknown; conditions?: { type: string; status: string }[] } };
          const kept = (text: string) => {
            const doc = JSON.parse(text) as Status;
            return {
              operations: doc.status?.operations,
              conditions: doc.status?.conditions?.map((c) => [c.type, c.status]),
            };
          };
          const before = kept(readFileSync(path.join(scratch, "status-v1.json"), "utf8"));
          assert.deepEqual(kept(bootedState(dir)), before, "node-01's status is as it was");
        }),
      );
    });

    it("an upgrade uploaded to the running appliance's console goes into slot B, comes up, is blessed, and keeps inventory and state", {
      skip: FULL_ONLY,
    }, async () => {
      const rootfs = path.join(out, `rootfs-${V1}`);
      const bundle = path.join(scratch, `${V2}.update.tar`);
      sh("bash", [path.join(repoRoot(), "build/appliance/make-update.sh"), rootfs, V2, bundle], 300_000);
      const v1 = await boot("boot2-v1");
      await v1.waitSerial(/metalman-banner: version=\S+ slot=a service=active health=ok/, BOOT_TIMEOUT_MS);
      // As an operator would with the console's Upgrade panel: log in, upload the bundle (curl here:
      // the same session, CSRF header and POST the panel sends).
      const jar = path.join(scratch, "cookies.txt");
      const base = `https://${MGMT_APPLIANCE}:8443/api/v1`;
      const logIn = async () => {
        // /healthz answers before the console listens: retry the login for a while (bounded).
        let last = "";
        for (let i = 0; i < 40; i++) {
          const r = inNs("curl", [
            "-sSk",
            "-m",
            "60",
            "-c",
            jar,
            "-H",
            "content-type: application/json",
            "-d",
            JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
            `${base}/session`,
          ]);
          last = r.out;
          if (r.status === 0 && last.includes("csrfToken"))
            return (JSON.parse(last) as { csrfToken: string }).csrfToken;
          await new Promise((resolve) => setTimeout(resolve, 3000));
        }
        throw new Error(`could not log in to the console: ${last}`);
      };
      const csrf = await logIn();
      const upload = inNs(
        "curl",
        [
          "-sSk",
          "-m",
          "600",
          "-b",
          jar,
          "-H",
          `x-csrf-token: ${csrf}`,
          "-H",
          "content-type: application/x-tar",
          "--data-binary",
          `@${bundle}`,
          "-w",
          "\n%{http_code}",
          `${base}/appliance/upgrade`,
        ],
        620_000,
      );
      assert.match(upload.out, /\n202$/, `upload accepted: ${upload.out}`);
      assert.equal((JSON.parse(upload.out.split("\n")[0] ?? "{}") as { version?: string }).version, V2);
      // The root side installs it into slot B and reboots by itself.
      await v1.waitSerial(/metalman-upgrade-spool: installing/, 300_000);
      const v = await afterReboot(v1, "boot2-v2", 900_000);
      const from = 0;
      const banner = await v.waitSerial(
        new RegExp(`metalman-banner: version=(${V2.replaceAll(".", "\\.")}) slot=(\\S) service=(\\S+) health=(\\S+)`),
        BOOT_TIMEOUT_MS,
        from,
      );
      assert.deepEqual(banner.slice(1), [V2, "b", "active", "ok"]);
      await v.waitSerial(/metalman-boot-check: healthy/, 120_000, from);
      // The console says the upgrade is done (the root side's status after the reboot).
      await logIn();
      const done = inNs("curl", ["-sSk", "-m", "30", "-b", jar, `${base}/appliance/upgrade`]);
      assert.match(done.out, /"state":"done"/, done.out);
      const health = httpStatus(`http://${MGMT_APPLIANCE}:8081/readyz`);
      assert.equal(health.out, "200", "ready: inventory valid, no quarantined state after the upgrade");
      // systemd-bless-boot renames the entry once boot-complete.target is reached
      await v
        .waitSerial(/Mark the Current Boot Loader Entry as Good|Finished.*[Bb]less/, 120_000)
        .catch(() => undefined);
      await off();
      assert.match(slots(), new RegExp(`slot b version ${V2} good`), "slot B blessed");
      withDisk((loop) =>
        loop.withMount("mm-data", mnt, (dir) => {
          assert.ok(existsSync(path.join(dir, "metalman", "machines", "node-01.yaml")));
          assert.ok(existsSync(path.join(dir, "metalman", "state", "status", "node-01.json")), "status kept");
        }),
      );
    });

    it("a version that does not come up (slot A) rolls back to slot B by itself", { skip: FULL_ONLY }, async () => {
      const rootfs = path.join(out, `rootfs-${V1}`);
      const bundle = path.join(scratch, `${V3}.update.tar`);
      sh("bash", [path.join(repoRoot(), "build/appliance/make-update.sh"), rootfs, V3, bundle, "--break"], 300_000);
      sh(path.join(repoRoot(), "appliance/bin/metalman-upgrade"), ["--image", disk, "--tries", "1", bundle], 300_000);
      assert.match(slots(), new RegExp(`slot a version ${V3} trial`));
      const bad = await boot("boot3");
      await bad.waitSerial(/metalman-boot-check: .*this slot is bad/, BOOT_TIMEOUT_MS);
      // The box reboots by itself; systemd-boot now picks slot B (A is out of tries). Slot B's
      // version came up healthy in the previous test, so seeing it boot is enough here.
      const v = await afterReboot(bad, "boot3b", 300_000);
      const failedAt = 0;
      await v.waitSerial(/Command line: .*metalman\.slot=(\S)/, BOOT_TIMEOUT_MS, failedAt);
      assert.match(v.serial().slice(failedAt), /Command line: .*root=PARTLABEL=mm-root-b .*metalman\.slot=b/);
      if (FULL) {
        const banner = await v.waitSerial(
          new RegExp(`metalman-banner: version=${V2} slot=(\\S) service=(\\S+) health=(\\S+)`),
          BOOT_TIMEOUT_MS,
          failedAt,
        );
        assert.deepEqual(banner.slice(1), ["b", "active", "ok"], "back on the previous version");
        await off();
      } else {
        v.kill(); // early boot: no ACPI handler yet, and nothing of ours is written before metalman runs
        await v.exited();
        vm = undefined;
      }
      const status = slots();
      assert.match(status, new RegExp(`slot a version ${V3} bad`), status);
      assert.match(status, new RegExp(`slot b version ${V2} good`), status);
      withDisk((loop) =>
        loop.withMount("mm-data", mnt, (dir) => {
          assert.ok(
            existsSync(path.join(dir, "metalman", "state", "status", "node-01.json")),
            "state survives the rollback",
          );
        }),
      );
    });
  },
);
