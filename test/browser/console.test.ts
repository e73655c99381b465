/**
 * Issue 8 proofs in a real browser (Debian's Chromium through playwright-core) against the real
 * appliance (`serve-pxe` with its console listener, loopback only):
 * - login works with the generated first admin password, and a wrong password is refused;
 * - a viewer cannot repave: the UI offers no working button, and the API answers 403;
 * - an admin edits a Machine in the console, and the inventory file keeps its comments;
 * - every main view, light and dark, is screenshotted under the test output and is not blank.
 * Before this change there was no console at all (no listener, no dist/console): every step fails.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { repoRoot } from "../support/paths.js";
import { type Browser, chromiumMissing, launchBrowser } from "./support/browser.js";
import { apiAddUser, apiLogin, type ConsoleBanner, pageFetch, ServePxe } from "./support/console-appliance.js";
import { testOutputDir } from "./support/output.js";
import { CONSOLE_VIEWS, shoot, viewShotName } from "./support/screenshots.js";

const PORTS = { console: 15201, http: 15202, health: 15203, tftp: 15204, dhcp: 15205, bmc: 15206 };
const missing = chromiumMissing();
const skip = process.env.CI !== "true" && missing ? `missing: ${missing}` : false;

const NODE_01 = `# Rack A, slot 1: the first server of the lab (keep this comment).
apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: node-01
  labels:
    rack: a # the rack label
spec:
  pxe:
    # the image every rack-a server installs
    image: dir:IMAGE
    dhcpLeases:
      - mac: "52:54:00:aa:bb:01"
        ipv4: "127.0.0.1" # the loopback lease
        subnetMask: "255.0.0.0"
        gateway: "127.0.0.1"
    redfish:
      url: https://127.0.0.1:${PORTS.bmc}
      username: admin
      passwordRef: {name: node-01-bmc, namespace: default, key: password}
`;

function otherMachine(name: string, mac: string, ip: string, rack: string, image: string): string {
  return `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: ${name}
  labels: {rack: ${rack}}
spec:
  pxe:
    image: dir:${image}
    dhcpLeases:
      - {mac: "${mac}", ipv4: "${ip}", subnetMask: "255.0.0.0", gateway: "127.0.0.1"}
`;
}

describe("web console in Chromium against serve-pxe", { skip, timeout: 240_000 }, () => {
  let work = "";
  let inventory = "";
  let server: ServePxe | undefined;
  let banner: ConsoleBanner;
  let browser: Browser | undefined;
  const out = testOutputDir("console");
  const image = path.join(repoRoot(), "netboot-images", "host-ubuntu2404");

  before(async () => {
    assert.equal(missing, undefined, `prerequisite missing (CI=true): ${missing}`);
    work = mkdtempSync(path.join(tmpdir(), "metalman-console-"));
    inventory = path.join(work, "inventory");
    mkdirSync(inventory);
    writeFileSync(path.join(inventory, "node-01.yaml"), NODE_01.replace("IMAGE", image));
    writeFileSync(
      path.join(inventory, "node-02.yaml"),
      otherMachine("node-02", "52:54:00:aa:bb:02", "127.0.0.2", "rack-a", image),
    );
    writeFileSync(
      path.join(inventory, "node-03.yaml"),
      otherMachine("node-03", "52:54:00:aa:bb:03", "127.0.0.3", "rack-b", image),
    );
    server = new ServePxe([
      ServePxe.mainJs(),
      "serve-pxe",
      ...["--inventory", inventory, "--state-dir", path.join(work, "state"), "--cache-dir", path.join(work, "cache")],
      ...["--bind-address", "127.0.0.1", "--serve-url", `http://127.0.0.1:${PORTS.http}`],
      ...["--http-port", String(PORTS.http), "--health-port", String(PORTS.health)],
      ...["--tftp-port", String(PORTS.tftp), "--dhcp-port", String(PORTS.dhcp)],
      ...["--image-root", path.dirname(image), "--console-port", String(PORTS.console), "--log-level", "info"],
    ]);
    banner = await server.banner();
    assert.ok(banner.admin, `no first admin password in the banner:\n${server.tail()}`);
    browser = await launchBrowser();
  });

  afterEach(async (t) => {
    // A failed step leaves a picture and the server's last lines behind.
    if ((t as { passed?: boolean }).passed === false && browser) {
      await browser.page.screenshot({ path: path.join(out, `FAILED-${t.name.slice(0, 40).replace(/\W+/g, "-")}.png`) });
      console.log(`# server:\n${server?.tail(40)}`);
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("refuses a wrong password, then logs in with the first admin's", async () => {
    const { page } = browser!;
    await page.goto(banner.url);
    await page.getByLabel("User name").fill("admin");
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByTestId("login-error").waitFor({ timeout: 10_000 });
    assert.match((await page.getByTestId("login-error").textContent()) ?? "", /wrong user name or password/i);
    assert.equal(await page.getByTestId("whoami").count(), 0, "not logged in");
    await shoot(page, path.join(out, "login-refused-light.png"));

    await page.getByLabel("Password").fill(banner.admin!.password);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByTestId("whoami").waitFor({ timeout: 10_000 });
    assert.match((await page.getByTestId("whoami").textContent()) ?? "", /admin/);
    await page.locator('tr[data-machine="node-03"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator("tr[data-machine]").count(), 3);
  });

  it("a viewer cannot repave, neither in the UI nor through the API", async () => {
    const admin = browser!.page;
    await admin.goto(banner.url);
    const csrf = await apiLogin(admin, "admin", banner.admin!.password);
    await apiAddUser(admin, csrf, { name: "vera", role: "viewer", password: "viewer-Pa55word" });

    const viewerContext = await browser!.newIsolatedContext();
    try {
      const page = await viewerContext.newPage();
      await page.goto(banner.url);
      await page.getByLabel("User name").fill("vera");
      await page.getByLabel("Password").fill("viewer-Pa55word");
      await page.getByRole("button", { name: "Log in" }).click();
      await page.getByTestId("whoami").waitFor({ timeout: 10_000 });
      await page.goto(`${banner.url}#/machines/node-01`);
      const repave = page.getByRole("button", { name: "Repave", exact: true });
      await repave.waitFor({ timeout: 10_000 });
      assert.equal(await repave.isDisabled(), true, "the Repave button is disabled for a viewer");
      await page.getByTestId("viewer-note").waitFor();
      // The API refuses it too, with the viewer's own session and CSRF token.
      const viewerCsrf = await apiLogin(page, "vera", "viewer-Pa55word");
      const response = await pageFetch(page, "POST", "/api/v1/machines/node-01/repave", {}, viewerCsrf);
      assert.equal(response.status, 403, JSON.stringify(response.body));
      assert.equal((response.body as { error: { code: string } }).error.code, "FORBIDDEN");
      const ops = await pageFetch(page, "GET", "/api/v1/operations");
      assert.equal((ops.body as { items: unknown[] }).items.length, 0, "no operation was created");
    } finally {
      await viewerContext.close();
    }
  });

  it("editing a Machine in the console keeps the file's comments", async () => {
    const { page } = browser!;
    await page.goto(`${banner.url}#/machines/node-01/yaml`);
    await page.getByRole("button", { name: "Edit" }).click();
    await page.getByLabel("Lease IPv4").fill("127.0.0.9");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Saved.").waitFor({ timeout: 10_000 });
    const file = readFileSync(path.join(inventory, "node-01.yaml"), "utf8");
    assert.match(file, /ipv4: "?127\.0\.0\.9"? # the loopback lease/);
    for (const comment of [
      "# Rack A, slot 1: the first server of the lab (keep this comment).",
      "# the rack label",
      "# the image every rack-a server installs",
    ]) {
      assert.ok(file.includes(comment), `lost ${JSON.stringify(comment)}:\n${file}`);
    }
    assert.ok(file.includes("passwordRef"), "the BMC secret reference stays");
    await page.goto(`${banner.url}#/machines`);
    await page.locator('tr[data-machine="node-01"]').waitFor({ timeout: 10_000 });
  });

  it("screenshots every main view in light and dark, none blank", async () => {
    const { page } = browser!;
    const views = CONSOLE_VIEWS;
    const shots: string[] = [];
    for (const theme of ["light", "dark"]) {
      await page.evaluate(`localStorage.setItem("metalman.theme", ${JSON.stringify(theme)})`);
      for (const view of views) {
        await page.goto(`${banner.url}#/${view}`);
        await page.reload();
        await page.locator("main h1").first().waitFor({ timeout: 10_000 });
        await page.waitForLoadState("networkidle").catch(() => undefined);
        assert.equal(await page.evaluate("document.documentElement.dataset.theme"), theme);
        const file = path.join(out, viewShotName(view, theme));
        await shoot(page, file);
        shots.push(file);
      }
    }
    assert.equal(shots.length, views.length * 2);
  });
});
