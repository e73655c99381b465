/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser), with the launch
 * flags of ../shared/lab/README-vm.md §5. `launch()` gives the browser its own temporary
 * profile; each context is a fresh cookie jar (one per logged-in user). The console's
 * certificate is self-signed (made at first start), so contexts accept it.
 */
import { existsSync } from "node:fs";
import { type BrowserContext, chromium, type Page, type Browser as PwBrowser } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} (apt-get install chromium)`;
}

export interface Browser {
  browser: PwBrowser;
  context: BrowserContext;
  page: Page;
  /** Another cookie jar: a second user logged in at the same time. */
  newIsolatedContext(): Promise<BrowserContext>;
  close(): Promise<void>;
}

export async function launchBrowser(
  options: { width?: number; height?: number; executablePath?: string } = {},
): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: options.executablePath ?? CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
  const contextOptions = {
    ignoreHTTPSErrors: true,
    viewport: { width: options.width ?? 1440, height: options.height ?? 900 },
  };
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  return {
    browser,
    context,
    page,
    newIsolatedContext: () => browser.newContext(contextOptions),
    async close() {
      await browser.close().catch(() => undefined);
    },
  };
}
