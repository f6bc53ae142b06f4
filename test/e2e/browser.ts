/**
 * Real headless Chromium for the dashboard tests: Debian's /usr/bin/chromium (`.ci/run` installs it)
 * driven by playwright-core, which never downloads a browser. A fresh profile per launch, removed
 * on close; nothing reaches the network beyond the loopback control plane.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = process.env.OUTPOST_CHROMIUM ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install it with \`apt-get install chromium\` (.ci/run does)`);
  const profile = await mkdtemp(join(tmpdir(), "outpost-chromium-"));
  let context: BrowserContext;
  try {
    // launchPersistentContext passes the profile as --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 860 },
      timeout: 20_000,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(10_000);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      try {
        await context.close();
      } finally {
        await rm(profile, { recursive: true, force: true });
      }
    },
  };
}

/**
 * What a screenshot shows, measured by decoding it in a blank page of the same browser: its size
 * in pixels, the number of distinct colours (sampled) and the share of pixels that differ from the
 * top-left one. A blank or failed render is one colour.
 */
export async function measureScreenshot(context: BrowserContext, png: Buffer): Promise<{ width: number; height: number; colours: number; nonBackground: number }> {
  const blank = await context.newPage();
  try {
    const dataUrl = `data:image/png;base64,${png.toString("base64")}`;
    return (await blank.evaluate(`(${MEASURE})(${JSON.stringify(dataUrl)})`)) as { width: number; height: number; colours: number; nonBackground: number };
  } finally {
    await blank.close();
  }
}

/** Runs in the browser (kept as source: this project's Node types have no DOM). */
const MEASURE = `async (dataUrl) => {
  const img = new Image();
  img.src = dataUrl;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width;
  canvas.height = img.height;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  const { data } = g.getImageData(0, 0, img.width, img.height);
  const colours = new Set();
  const bg = (data[0] << 16) | (data[1] << 8) | data[2];
  const pixels = data.length / 4;
  let differ = 0;
  for (let i = 0; i < pixels; i++) {
    const c = (data[i * 4] << 16) | (data[i * 4 + 1] << 8) | data[i * 4 + 2];
    if (c !== bg) differ++;
    if (i % 7 === 0) colours.add(c);
  }
  return { width: img.width, height: img.height, colours: colours.size, nonBackground: differ / pixels };
}`;
