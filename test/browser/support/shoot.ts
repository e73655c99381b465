/** Dev helper: screenshot every main view of a running console. `node shoot.js URL OUTDIR [user pass]`. */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { launchBrowser } from "./browser.js";
import { CONSOLE_VIEWS, viewShotName } from "./screenshots.js";

const [url, out, user, pass] = process.argv.slice(2);
if (!url || !out) throw new Error("usage: shoot.js URL OUTDIR [user pass]");
mkdirSync(out, { recursive: true });
const browser = await launchBrowser();
const { page } = browser;
await page.goto(url);
if (user && pass) {
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(pass);
  await page.getByRole("button", { name: "Log in" }).click();
}
for (const theme of ["light", "dark"]) {
  await page.evaluate(`localStorage.setItem("metalman.theme", ${JSON.stringify(theme)})`);
  for (const view of CONSOLE_VIEWS) {
    await page.goto(`${url}#/${view}`);
    await page.reload();
    await page.waitForTimeout(600);
    await page.screenshot({ path: path.join(out, viewShotName(view, theme)) });
  }
}
await browser.close();
