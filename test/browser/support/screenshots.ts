/**
 * Screenshots of the console, checked to show something: decoded in the browser itself (a
 * canvas, no PNG library), the picture must hold many colours and a real share of pixels that
 * differ from the background. A blank page, a white error page or a black frame all fail.
 */
import { writeFileSync } from "node:fs";
import type { BrowserContext, Page } from "playwright-core";

/** The console's main views (hash routes), as the screenshot proof and tools walk them. */
export const CONSOLE_VIEWS = [
  "machines",
  "machines/node-01",
  "machines/node-01/details",
  "machines/node-01/yaml",
  "discovered",
  "images",
  "operations",
  "appliance",
  "audit",
] as const;

/** The file name of a view's screenshot in a theme: `machines-node-01-details-dark.png`. */
export function viewShotName(view: string, theme: string): string {
  return `${view.replaceAll("/", "-")}-${theme}.png`;
}

export interface PictureStats {
  width: number;
  height: number;
  distinctColors: number;
  /** Share of sampled pixels that are not the most common colour. */
  foreground: number;
}

export async function pictureStats(context: BrowserContext, png: Buffer): Promise<PictureStats> {
  const page = await context.newPage();
  try {
    await page.setContent("<canvas id=c></canvas>");
    // Runs in the page (a string: the test's TypeScript has no DOM types).
    const script = `(async (b64) => {
      const img = new Image();
      img.src = "data:image/png;base64," + b64;
      await img.decode();
      const canvas = document.getElementById("c");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const g = canvas.getContext("2d");
      g.drawImage(img, 0, 0);
      const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
      const counts = new Map();
      let samples = 0;
      for (let y = 0; y < canvas.height; y += 3) {
        for (let x = 0; x < canvas.width; x += 3) {
          const i = (y * canvas.width + x) * 4;
          const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
          counts.set(key, (counts.get(key) ?? 0) + 1);
          samples += 1;
        }
      }
      const top = Math.max(...counts.values());
      return { width: canvas.width, height: canvas.height, distinctColors: counts.size, foreground: 1 - top / samples };
    })(${JSON.stringify(png.toString("base64"))})`;
    return (await page.evaluate(script)) as PictureStats;
  } finally {
    await page.close();
  }
}

/** Take, save and check one screenshot; returns its stats. */
export async function shoot(page: Page, file: string): Promise<PictureStats> {
  const png = await page.screenshot({ path: undefined });
  writeFileSync(file, png);
  const stats = await pictureStats(page.context(), png);
  if (stats.distinctColors < 16 || stats.foreground < 0.04) {
    throw new Error(`${file} looks blank: ${JSON.stringify(stats)}`);
  }
  return stats;
}
